"""Benchmark of shmq's Python package against multiprocessing and faster-fifo.

Measures, in one run and on this machine:

* throughput, 1 producer process -> 1 consumer process, of 64-byte messages: shmq with
  ``put_bytes``/``get_bytes`` and with small pickled objects, ``multiprocessing.Queue``,
  ``multiprocessing.SimpleQueue`` and ``faster_fifo.Queue`` (if installed);
* the 64-byte round trip (ping-pong between two processes over two queues): p50 and p99.

Usage: ``python bench.py [--messages N] [--rounds N]``. faster-fifo is optional
(``pip install faster-fifo`` into the same venv); it is not needed by the package or CI.
Prints a Markdown table with ratios against multiprocessing.Queue and faster-fifo.
"""

import argparse
import multiprocessing as mp
import statistics
import time

import shmq

try:
    import faster_fifo
except ImportError:  # optional baseline
    faster_fifo = None

CTX = mp.get_context("fork")
PAYLOAD = b"x" * 64
OBJ = (12345, "a small object", 3.5)  # about 64 bytes pickled


def _consume(kind, q, n, done):
    get = _getter(kind, q)
    for _ in range(n):
        get()
    done.put(time.perf_counter())


def _getter(kind, q):
    if kind == "shmq-bytes":
        return q.get_bytes
    if kind == "faster-fifo":
        return lambda: q.get(timeout=60)
    return q.get


def _putter(kind, q):
    if kind == "shmq-bytes":
        return lambda: q.put_bytes(PAYLOAD)
    if kind == "shmq-object":
        return lambda: q.put(OBJ)
    if kind == "mp.Queue-object":
        return lambda: q.put(OBJ)
    if kind == "faster-fifo":
        return lambda: q.put(PAYLOAD, timeout=60)
    return lambda: q.put(PAYLOAD)


def make(kind, maxsize=1024):
    if kind.startswith("shmq"):
        return shmq.Queue(maxsize, slot_size=256)
    if kind.startswith("mp.Queue"):
        return CTX.Queue(maxsize)
    if kind == "mp.SimpleQueue":
        return CTX.SimpleQueue()
    if kind == "faster-fifo":
        return faster_fifo.Queue(max_size_bytes=1 << 20)
    raise ValueError(kind)


def throughput(kind, n):
    q = make(kind)
    done = CTX.SimpleQueue()
    p = CTX.Process(target=_consume, args=(kind, q, n, done))
    p.start()
    put = _putter(kind, q)
    put()  # warm-up message: the consumer is running when the clock starts
    t0 = time.perf_counter()
    for _ in range(n - 1):
        put()
    t1 = done.get()
    p.join()
    return (n - 1) / (t1 - t0)


def _echo(kind, a, b, rounds):
    get, put = _getter(kind, a), _putter(kind, b)
    for _ in range(rounds):
        get()
        put()


def roundtrip(kind, rounds):
    a, b = make(kind, 2), make(kind, 2)
    p = CTX.Process(target=_echo, args=(kind, a, b, rounds))
    p.start()
    put, get = _putter(kind, a), _getter(kind, b)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        put()
        get()
        times.append(time.perf_counter() - t0)
    p.join()
    times = times[rounds // 10 :]  # drop the warm-up tenth
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=20_000)
    args = ap.parse_args()
    kinds = ["shmq-bytes", "shmq-object", "mp.Queue", "mp.Queue-object", "mp.SimpleQueue"]
    if faster_fifo is not None:
        kinds.append("faster-fifo")
    rate = {}
    rtt = {}
    for k in kinds:
        n = args.messages if k.startswith("shmq") else max(args.messages // 4, 1000)
        rate[k] = throughput(k, n)
        rtt[k] = roundtrip(k, args.rounds if k.startswith("shmq") else args.rounds // 2)
    ff = rate.get("faster-fifo")
    print(
        "| queue, 64 B | 1 -> 1 msgs/s | x mp.Queue (same payload) | x faster-fifo "
        "| round trip p50 | p99 | p50 / mp.Queue's (same payload) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in kinds:
        # Objects are compared with objects, bytes with bytes.
        base = "mp.Queue-object" if k.endswith("object") else "mp.Queue"
        ratio_ff = f"{rate[k] / ff:.1f}" if ff else "n/a"
        p50, p99 = rtt[k]
        print(
            f"| {k} | {rate[k]:,.0f} | {rate[k] / rate[base]:.1f} | {ratio_ff} | "
            f"{p50 * 1e6:.1f} µs | {p99 * 1e6:.1f} µs | {p50 / rtt[base][0]:.2f} |"
        )


if __name__ == "__main__":
    main()
