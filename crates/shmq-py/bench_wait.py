"""Waiting on shmq objects: the wake-up latency of ``multiprocessing.connection.wait`` on a
connection's ``fileno()``, and an asyncio round trip against the blocking one.

    python crates/shmq-py/bench_wait.py [--rounds N] [--quick]

Two processes (fork). Each figure is a distribution over N samples; the variants run
interleaved in rounds (A, B, A, B, ...) so that a busy machine slows them alike.

- wake-up: the child sleeps 0.5 ms (so the parent is asleep), stamps ``time.perf_counter_ns``
  (CLOCK_MONOTONIC, one clock for both processes) and sends it; the parent, blocked in
  ``wait([conn])`` (or, for comparison, in ``conn.poll(None)``, which polls for a while before
  it sleeps), stamps again on return. The floor: the same with an OS pipe in ``wait``, one
  wake-up of a sleeping process by the kernel, where ``wait([conn])`` takes two (the sender
  wakes this process's notifier thread, which makes the fd readable).
- round trip: the parent sends a small object and waits for the child's echo; blocking
  (``send``/``recv`` on both sides) against asyncio (``coro_send``/``coro_recv`` on both
  sides, the child running its own event loop), on the default loop and on uvloop if it is
  installed.
- idle: the CPU time of this process over 3 s while ``wait`` sleeps on 100 connections (and on
  100 queues).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import time
from multiprocessing.connection import wait

import shmq

try:
    import uvloop
except ImportError:  # optional
    uvloop = None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


# -- wake-up -------------------------------------------------------------------------------


def stamp_child(go, w, n, send_kind):
    for _ in range(n):
        os.read(go, 1)
        time.sleep(0.0005)
        stamp = time.perf_counter_ns().to_bytes(8, "little")
        if send_kind == "os":
            os.write(w, stamp)
        else:
            w.send_bytes(stamp)
    if send_kind == "shmq":
        w.close()


class _Fd:
    """An OS pipe's read end for ``wait``."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


def wakeups(n, how):
    """``n`` wake-ups of the parent, blocked in ``how``: ``wait`` or ``poll`` on a shmq
    connection, or ``os-wait``, ``wait`` on an OS pipe (the floor: one wake-up of a sleeping
    process by the kernel). The parent tells the child when to send the next stamp through
    an OS pipe, so that the child sleeps in ``read`` between stamps."""
    send_kind = "os" if how == "os-wait" else "shmq"
    if send_kind == "os":
        rfd, w = os.pipe()
        r = _Fd(rfd)
    else:
        r, w = shmq.Pipe(duplex=False)
    gr, gw = os.pipe()
    p = mp.get_context("fork").Process(target=stamp_child, args=(gr, w, n, send_kind))
    p.start()
    out = []
    for _ in range(n):
        os.write(gw, b"g")
        if how == "poll":
            assert r.poll(10)
        else:
            assert wait([r], 10) == [r]
        t = time.perf_counter_ns()
        got = os.read(rfd, 8) if send_kind == "os" else r.recv_bytes()
        out.append((t - int.from_bytes(got, "little")) / 1000)
    p.join()
    if send_kind == "os":
        os.close(rfd)
        os.close(w)
    else:
        r.close()
        w.close()
    os.close(gr)
    os.close(gw)
    return out


# -- round trips ---------------------------------------------------------------------------


def echo_blocking(conn, n):
    for _ in range(n):
        conn.send(conn.recv())
    conn.close()


def echo_async(conn, n, loop_kind):
    async def run():
        for _ in range(n):
            await conn.coro_send(await conn.coro_recv())

    new_loop(loop_kind).run_until_complete(run())
    conn.close()


def new_loop(kind):
    if kind == "uvloop":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def round_trips(n, kind):
    a, b = shmq.Pipe()
    ctx = mp.get_context("fork")
    if kind == "blocking":
        p = ctx.Process(target=echo_blocking, args=(b, n))
    else:
        p = ctx.Process(target=echo_async, args=(b, n, kind))
    p.start()
    msg = ("ping", 1)
    out = []
    if kind == "blocking":
        for _ in range(n):
            t = time.perf_counter_ns()
            a.send(msg)
            a.recv()
            out.append((time.perf_counter_ns() - t) / 1000)
    else:

        async def run():
            for _ in range(n):
                t = time.perf_counter_ns()
                await a.coro_send(msg)
                await a.coro_recv()
                out.append((time.perf_counter_ns() - t) / 1000)

        loop = new_loop(kind)
        loop.run_until_complete(run())
        loop.close()
    p.join()
    a.close()
    b.close()
    return out


# -- idle ----------------------------------------------------------------------------------


def idle_cpu(objs, seconds=3.0):
    for o in objs:
        o.fileno()
    time.sleep(0.2)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    got = wait(objs, seconds)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    assert got == []
    return (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="few samples (a smoke run)")
    args = ap.parse_args()
    n_wake = 50 if args.quick else 400
    n_rt = 200 if args.quick else 4000
    rounds = 1 if args.quick else args.rounds

    wake = {"wait([conn])": "wait", "conn.poll(None)": "poll", "wait([os pipe]), the floor": "os-wait"}
    lat = {k: [] for k in wake}
    kinds = ["blocking", "asyncio"] + (["uvloop"] if uvloop else [])
    rt = {k: [] for k in kinds}
    for _ in range(rounds):
        for k, how in wake.items():
            lat[k] += wakeups(n_wake, how)
        for k in kinds:
            rt[k] += round_trips(n_rt, k)

    print("wake-up latency, sender's stamp to the waiter's return (us)")
    for k, xs in lat.items():
        print(f"  {k:<27} p50 {pct(xs, .5):8.1f}  p90 {pct(xs, .9):8.1f}  p99 {pct(xs, .99):8.1f}  (n={len(xs)})")
    print("round trip of a small object, two processes (us)")
    base = pct(rt["blocking"], 0.5)
    for k, xs in rt.items():
        print(
            f"  {k:<18} p50 {pct(xs, .5):8.1f}  p99 {pct(xs, .99):8.1f}  p50 ratio to blocking {pct(xs, .5) / base:5.2f}"
        )
    if uvloop is None:
        print("  (uvloop is not installed: not measured)")

    pipes = [shmq.Pipe() for _ in range(100)]
    ms = idle_cpu([a for a, _ in pipes])
    print(f"idle: wait() on 100 connections for 3 s used {ms:.1f} ms of CPU")
    for a, b in pipes:
        a.close()
        b.close()
    queues = [shmq.Queue(4) for _ in range(100)]
    ms = idle_cpu(queues)
    print(f"idle: wait() on 100 queues for 3 s used {ms:.1f} ms of CPU")
    for q in queues:
        q.close()


if __name__ == "__main__":
    main()
