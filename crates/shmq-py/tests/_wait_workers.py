"""Targets of the child processes of test_wait.py and test_aio.py (importable by spawn and
forkserver children)."""

import asyncio
import os
import random
import time
from multiprocessing.connection import wait


def send_numbers(w, slow):
    """Sends (i, pid) for i in 0..9, pausing up to 0.1 s before each if `slow`, then closes."""
    for i in range(10):
        if slow:
            time.sleep(random.random() * 0.1)
        w.send((i, os.getpid()))
    w.close()


def release_then_sleep(sem, seconds):
    sem.release()
    time.sleep(seconds)


def feed_mixed(w1, q, sock, w3):
    """Makes one pipe, one queue and one socket readable and ends the other pipe (EOF)."""
    w1.send("pipe")
    q.put("queue")
    sock.sendall(b"socket")
    w3.close()


def hold_until_killed(w, ready):
    ready.set()
    time.sleep(60)


def wait_then_report(r, report):
    """Waits on an inherited (fork) or unpickled (spawn) connection: first nothing, then the
    parent's message; reports both results and the message."""
    first = wait([r], 0.2)
    report.put(("waiting", first == [], r.fileno()))
    second = wait([r], 30)
    report.put(("ready", second == [r], r.recv()))
    r.close()


def stamp_and_send(go, w, n):
    """n times: wait for the parent's go, sleep 0.5 ms (the parent is asleep in wait() by
    then), send the time.perf_counter_ns() stamp."""
    for _ in range(n):
        go.recv()
        time.sleep(0.0005)
        w.send_bytes(time.perf_counter_ns().to_bytes(8, "little"))
    w.close()


def get_one_and_report(q, report):
    report.put(q.get(timeout=60))


def put_slowly(q, n, delay):
    for i in range(n):
        time.sleep(delay)
        q.put(i)


# -- asyncio ------------------------------------------------------------------------------


def new_loop(kind):
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_async(kind, coro):
    loop = new_loop(kind)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def async_queue_echo(kind, q_in, q_out, n):
    async def main():
        for _ in range(n):
            await q_out.coro_put(await q_in.coro_get())

    run_async(kind, main())


def async_pipe_echo(kind, conn, n):
    async def main():
        for _ in range(n):
            await conn.coro_send(await conn.coro_recv())

    run_async(kind, main())
    conn.close()


def pipe_echo(conn, n):
    for _ in range(n):
        conn.send(conn.recv())
    conn.close()


def queue_echo(q_in, q_out, n):
    for _ in range(n):
        q_out.put(q_in.get())


def hold_task_then_report(q, hold, report):
    q.get()
    time.sleep(hold)
    report.put(time.monotonic())
    q.task_done()


def put_jittered(q, n, seed):
    """Puts 0..n-1 with random pauses of up to 2 ms."""
    rnd = random.Random(seed)
    for i in range(n):
        if rnd.random() < 0.5:
            time.sleep(rnd.random() * 0.002)
        q.put(i)


def get_jittered_then_report(q, report, seed):
    """Gets until None with random pauses of up to 2 ms; reports everything got."""
    rnd = random.Random(seed)
    got = []
    while True:
        if rnd.random() < 0.5:
            time.sleep(rnd.random() * 0.002)
        x = q.get(timeout=60)
        if x is None:
            break
        got.append(x)
    report.put(got)


def work_slowly(q, delay):
    while True:
        x = q.get(timeout=60)
        time.sleep(delay)
        q.task_done()
        if x is None:
            break


def recv_slowly_then_report(conn, report, n, delay):
    got = []
    for _ in range(n):
        time.sleep(delay)
        got.append(conn.recv())
    report.put(got)
    conn.close()


def hold_ends_until_killed(ends, ready):
    """Holds the other ends of many pipes, idle, until killed."""
    ready.set()
    time.sleep(120)


def fork_holder_then_close(w, report):
    """Forks a grandchild that inherits (holds) `w` and reports its pid; then closes this
    process's copy of `w` and stays alive, idle, until killed."""
    pid = os.fork()
    if pid == 0:
        try:
            report.put(("grandchild", os.getpid()))
            time.sleep(60)
        finally:
            os._exit(0)
    w.close()
    report.put(("closed", os.getpid()))
    time.sleep(60)
