"""Targets of the child processes of the suite (importable by spawn and forkserver children)."""

import os
import signal
import sys
import time

import shmq


def put_items(q, items, delay=0.0):
    for x in items:
        if delay:
            time.sleep(delay)
        q.put(x)


def put_range_then_done(q, n):
    for i in range(n):
        q.put(i)


def get_n_into(q, out, n):
    got = [q.get(timeout=30) for _ in range(n)]
    out.put(got)


def joinable_worker(q):
    while True:
        item = q.get()
        q.task_done()
        if item is None:
            break


STOP = b"\x00stop"


def echo_conn(conn):
    """Sends back every message until STOP or EOF, then closes (CPython's _echo). A forked
    child also holds the parent's end (as with OS pipes), so EOF alone would not come."""
    try:
        while True:
            msg = conn.recv_bytes()
            if msg == STOP:
                break
            conn.send_bytes(msg)
    except EOFError:
        pass
    conn.close()


def send_and_exit(conn, objs):
    for o in objs:
        conn.send(o)
    conn.close()


def poll_once(r, timeout):
    r.poll(timeout)


def child_access(conn):
    wr = conn.recv()
    wr.send("all is well")
    wr.close()
    r = conn.recv()
    msg = r.recv()
    conn.send(msg * 2)
    conn.close()


def send_then_sleep(conn, seconds):
    conn.send("ready")
    time.sleep(seconds)


def recv_all_then_report(conn, report, inherited=None):
    if inherited is not None:
        inherited.close()  # a forked child holds the parent's writer too, as with OS pipes
    got = []
    try:
        while True:
            got.append(conn.recv())
    except EOFError:
        pass
    report.put(got)


def decrement(d, lock, key):
    if lock is None:
        v = d[key]
        time.sleep(0.0005)
        d[key] = v - 1
    else:
        with lock:
            v = d[key]
            time.sleep(0.0005)
            d[key] = v - 1


def hold_lock_forever(lock, ready):
    lock.acquire()
    ready.put(os.getpid())
    time.sleep(3600)


def put_forever(q, ready):
    ready.put(os.getpid())
    i = 0
    while True:
        q.put_bytes(i.to_bytes(8, "little"))
        i += 1


def get_forever(q, ready):
    ready.put(os.getpid())
    while True:
        q.get_bytes()


def describe(objs, out):
    """Uses every object it was given and reports what it saw."""
    q, jq, sq, conn, lock, d = objs
    with lock:
        d["seen"] = d.get("seen", 0) + 1
    q.put(("q", os.getpid()))
    jq.put("jq")
    sq.put("sq")
    conn.send("conn")
    out.put((q.name, jq.name, sq.name, conn.name, lock.name, d.name))


def attach_and_get(name):
    q = shmq.Queue.attach(name)
    return q.get(timeout=30)


def pool_task(args):
    q, d, i = args
    q.put(i * i)
    d.add("calls")
    return i


def big_roundtrip(q, size):
    q.put(b"\x07" * size)


def created_by_child(out, ready_to_die):
    """Creates an anonymous queue, hands it to the parent, and waits to be killed."""
    q = shmq.Queue(4)
    q.put("from a killed creator")
    out.put(q)
    ready_to_die.get()
    time.sleep(3600)


def interrupted_get(kind, ready_path):
    """Blocks in a call, is interrupted by SIGINT, checks the object still works; exit 0
    on success, and prints the latency in ms."""
    if kind == "queue":
        q = shmq.Queue(2)
        call = q.get
    elif kind == "joinable":
        q = shmq.JoinableQueue(2)
        q.put(1)
        call = q.join
    elif kind == "pipe":
        a, b = shmq.Pipe()
        call = a.recv
    elif kind == "lock":
        import multiprocessing as mp

        lk = shmq.Lock()
        ready = shmq.Queue(1)
        holder = mp.get_context("fork").Process(target=hold_lock_forever, args=(lk, ready))
        holder.start()
        ready.get(timeout=30)
        call = lk.acquire
    try:
        with open(ready_path, "w") as f:
            f.write(str(os.getpid()))
        call()
    except KeyboardInterrupt:
        t1 = time.monotonic()
        sent = float(open(ready_path + ".sent").read())
        print(f"latency_ms={1000 * (t1 - sent):.1f}")
        if kind == "queue":
            q.put("still works")
            assert q.get(timeout=5) == "still works"
            assert q.qsize() == 0
        elif kind == "joinable":
            q.get()
            q.task_done()
            assert q.join(timeout=5)
        elif kind == "pipe":
            b.send("still works")
            assert a.recv() == "still works"
        elif kind == "lock":
            holder.kill()
            holder.join()
            assert lk.acquire(timeout=10)  # the killed holder's lock passes on
            lk.release()
        sys.exit(0)
    sys.exit(3)


if __name__ == "__main__":
    interrupted_get(sys.argv[1], sys.argv[2])


STRESS_STOP = b"\xff" * 8


def stress_put_bytes(q, n):
    """Puts `n` messages of 64 bytes, then the stop message."""
    for _ in range(n):
        q.put_bytes(b"x" * 64)
    q.put_bytes(STRESS_STOP)


def stress_get_bytes(q, out):
    """Takes messages until the stop message; reports ("ok", count) or ("err", repr)."""
    k = 0
    try:
        while q.get_bytes() != STRESS_STOP:
            k += 1
        out.put(("ok", k))
    except Exception as e:  # noqa: BLE001 - the report is the assertion's subject
        out.put(("err", repr(e)))
