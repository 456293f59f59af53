"""Benchmark of shmq's Python package against multiprocessing and faster-fifo, like for like.

Every row runs the same workload under the ``fork`` start method: producer processes put
messages of 64 bytes, consumer processes take them, and each consumer checks what it got (a
sequence number in the first 8 bytes of each payload, or the object itself, summed into a
checksum that the parent compares with the expected one). Each peer is used the way its users
use it, and the row says how:

* ``shmq put_bytes/get_bytes``: raw bytes, no pickling;
* ``shmq put/get <type>``: objects, for ``bytes``, ``str``, ``int``, a small tuple and a small
  dict (each of these travels behind a type tag, without pickle; other objects are pickled);
* ``mp.Queue() put/get <type>``: the default, unbounded ``multiprocessing.Queue()`` (a feeder
  thread, pickling every object), the same objects;
* ``faster-fifo raw get_many``: ``faster_fifo.Queue`` with identity ``dumps`` and ``loads`` that
  copies the bytes out (its raw-bytes mode), consumers taking batches with ``get_many``
  (only if faster-fifo is installed: ``pip install faster-fifo``);
* ``faster-fifo get``: the same queue, one message per ``get``.

Then one row per peer of 4 producers -> 4 consumers (raw bytes), and the round trip (ping-pong
of one message between two processes over two queues): p50 and p99.

What the clock covers: each producer builds its messages (distinct, numbered) before the clock
starts, as a list, and the clock runs from the moment every producer is released to the moment
the last consumer has taken and checked its last message. So a row measures the queue (put,
transfer, get) and the consumer's check, not how fast Python formats a string: building a
64-character ``str`` with ``f"{i:08d}"`` costs about as much as shmq's put and get of it
together, and bounded the ``str`` row when it ran inside the producer's loop. ``--build-in-loop``
builds each message inside the producer's timed loop instead (for every peer alike).

The throughput rows run ``--repeats`` times, interleaved (every peer of one type in turn, then
the next type, then the next repeat); each row gives its median rate and the median of its
per-repeat ratios.

Usage: ``python bench.py [--messages N] [--repeats N] [--rounds N] [--build-in-loop]``. Prints
Markdown tables; ratios are against ``mp.Queue()`` with the same payload and against
faster-fifo raw ``get_many``, of the same repeat. On a busy machine, compare the ratios of one
run, not figures of different runs.
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
PAD = b"x" * 56
SPAD = "s" * 56
STOP = b"\xff" * 64


def payload(i):
    """64 bytes: the sequence number, then padding."""
    return i.to_bytes(8, "little") + PAD


#: Objects per type: a maker from the sequence number and the checksum of one received object.
OBJECTS = {
    "bytes": (payload, lambda o: int.from_bytes(o[:8], "little")),
    "str": (lambda i: f"{i:08d}" + SPAD, lambda o: int(o[:8])),
    "int": (lambda i: i, lambda o: o),
    "tuple": (lambda i: (i, "task", 2.5), lambda o: o[0]),
    "dict": (lambda i: {"id": i, "op": "put", "w": 1.5}, lambda o: o["id"]),
}


class Peer:
    """How one queue is made, fed and drained: ``get_one(q)`` gives a function that takes one
    message, ``get_batch(q)`` one that takes a batch (a sequence); a peer has either."""

    def __init__(self, label, make, put, stop, get_one=None, get_batch=None):
        self.label, self.make, self.put, self.stop = label, make, put, stop
        self.get_one, self.get_batch = get_one, get_batch


def _shmq_bytes():
    return Peer(
        "shmq put_bytes/get_bytes",
        lambda: shmq.Queue(),
        lambda q: q.put_bytes,
        STOP,
        get_one=lambda q: q.get_bytes,
    )


def _shmq_obj(t):
    return Peer(
        f"shmq put/get {t}", lambda: shmq.Queue(), lambda q: q.put, None, get_one=lambda q: q.get
    )


def _mp_obj(t):
    return Peer(
        f"mp.Queue() put/get {t}", lambda: CTX.Queue(), lambda q: q.put, None, get_one=lambda q: q.get
    )


def _ff_queue():
    return faster_fifo.Queue(max_size_bytes=1 << 20, loads=bytes, dumps=lambda b: b)


def _ff_many():
    return Peer(
        "faster-fifo raw get_many",
        _ff_queue,
        lambda q: lambda m: q.put(m, timeout=60),
        STOP,
        get_batch=lambda q: lambda: q.get_many(timeout=60),
    )


def _ff_get():
    return Peer(
        "faster-fifo raw get",
        _ff_queue,
        lambda q: lambda m: q.put(m, timeout=60),
        STOP,
        get_one=lambda q: lambda: q.get(timeout=60),
    )


def _produce(peer, q, start, n, make, ready, go, in_loop):
    """Puts messages ``start`` .. ``start + n``: built first (unless ``in_loop``), then
    ``ready`` is told and the clock's ``go`` awaited."""
    put = peer.put(q)
    msgs = None if in_loop else [make(i) for i in range(start, start + n)]
    ready.put(None)
    go.wait()
    if in_loop:
        for i in range(start, start + n):
            put(make(i))
    else:
        for m in msgs:
            put(m)


def _consume(peer, q, check, done):
    """Takes messages until the stop message; reports (count, checksum, end time). The loop
    is the same for every peer that takes one message per call."""
    stop = peer.stop
    k = s = 0
    if peer.get_one is not None:
        get = peer.get_one(q)
        while True:
            m = get()
            # (The stop object is None, which travels as itself, or bytes, compared by value.)
            if m is None if stop is None else m == stop:
                done.put((k, s, time.perf_counter()))
                return
            k += 1
            s += check(m)
    get = peer.get_batch(q)
    while True:
        batch = get()
        for j, m in enumerate(batch):
            if m is stop or m == stop:
                # A batch may hold other consumers' stop messages (stops come after all data):
                # hand them back.
                put = peer.put(q)
                for _ in batch[j + 1 :]:
                    put(stop)
                done.put((k, s, time.perf_counter()))
                return
            k += 1
            s += check(m)


def throughput(peer, n, t="bytes", producers=1, consumers=1, in_loop=False):
    make, check = OBJECTS[t]
    q = peer.make()
    done = CTX.SimpleQueue()
    cons = [CTX.Process(target=_consume, args=(peer, q, check, done)) for _ in range(consumers)]
    for p in cons:
        p.start()
    per = n // producers
    put = peer.put(q)
    put(make(0))  # warm-up: consumers are running when the clock starts
    ready, go = CTX.SimpleQueue(), CTX.Event()
    prods = [
        CTX.Process(target=_produce, args=(peer, q, 1 + j * per, per, make, ready, go, in_loop))
        for j in range(producers)
    ]
    for p in prods:
        p.start()
    for _ in prods:
        ready.get()
    t0 = time.perf_counter()
    go.set()
    for p in prods:
        p.join()
    for _ in cons:
        put(peer.stop)
    reports = [done.get() for _ in cons]
    for p in cons:
        p.join()
    count = sum(r[0] for r in reports)
    total = sum(r[1] for r in reports)
    expected = 1 + producers * per
    want = sum(range(0, expected))
    if count != expected or total != want:
        raise AssertionError(f"{peer.label}: got {count} messages, checksum {total}; want {expected}, {want}")
    return (count - 1) / (max(r[2] for r in reports) - t0)


def _echo(peer, a, b, rounds):
    put = peer.put(b)
    if peer.get_one is not None:
        get = peer.get_one(a)
        for _ in range(rounds):
            put(get())
        return
    get = peer.get_batch(a)
    for _ in range(rounds):
        for m in get():
            put(m)


def roundtrip(peer, rounds, t="bytes"):
    make, _ = OBJECTS[t]
    a, b = peer.make(), peer.make()
    p = CTX.Process(target=_echo, args=(peer, a, b, rounds))
    p.start()
    put, get = peer.put(a), (peer.get_one or peer.get_batch)(b)
    times = []
    for i in range(rounds):
        m = make(i)
        t0 = time.perf_counter()
        put(m)
        get()
        times.append(time.perf_counter() - t0)
    p.join()
    times = times[rounds // 10 :]  # drop the warm-up tenth
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def _rows(runs, base_of, ff_label="faster-fifo raw get_many"):
    """Per label: the median rate over the repeats, and the medians of the per-repeat ratios
    to the label's baseline (``base_of(label)``) and to faster-fifo raw ``get_many``."""
    out = {}
    for label in runs[0]:
        rates = [r[label] for r in runs]
        to_base = [r[label] / r[base_of(label)] for r in runs]
        to_ff = [r[label] / r[ff_label] for r in runs if ff_label in r]
        out[label] = (
            statistics.median(rates),
            statistics.median(to_base),
            statistics.median(to_ff) if to_ff else None,
            (min(to_base), max(to_base)),
        )
    return out


def _print_rows(title, rows, baseline):
    print(f"| {title} | msgs/s | x {baseline} | range over repeats | x faster-fifo raw get_many |")
    print("|---|---:|---:|---:|---:|")
    for label, (rate, to_base, to_ff, (lo, hi)) in rows.items():
        ff = f"{to_ff:.1f}" if to_ff is not None else "n/a"
        print(f"| {label} | {rate:,.0f} | {to_base:.1f} | {lo:.1f}–{hi:.1f} | {ff} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=20_000)
    ap.add_argument(
        "--build-in-loop",
        action="store_true",
        help="build each message inside the producer's timed loop (every peer alike)",
    )
    args = ap.parse_args()
    n, in_loop = args.messages, args.build_in_loop
    print(
        f"messages built {'in the timed loop' if in_loop else 'before the clock'}; "
        f"{n:,} messages a row (mp.Queue() and faster-fifo: half), {args.repeats} repeats"
    )
    print()
    one, four = [], []
    for _ in range(args.repeats):
        rate = {}
        # Interleaved: every peer of one type, then the next type.
        for t in OBJECTS:
            peers = [_shmq_obj(t), _mp_obj(t)]
            if t == "bytes":
                peers.insert(0, _shmq_bytes())
                if faster_fifo is not None:
                    peers += [_ff_many(), _ff_get()]
            for peer in peers:
                m = n if "shmq" in peer.label else max(n // 2, 1000)
                rate[peer.label] = throughput(peer, m, t, in_loop=in_loop)
        one.append(rate)
        peers4 = [_shmq_bytes(), _mp_obj("bytes")] + ([_ff_many()] if faster_fifo else [])
        four.append({p.label: throughput(p, n, "bytes", 4, 4, in_loop=in_loop) for p in peers4})

    def base_of(label):
        """The ``mp.Queue()`` row of the same payload type (raw-bytes rows: ``bytes``)."""
        t = next((t for t in OBJECTS if label.endswith(f"put/get {t}")), "bytes")
        return f"mp.Queue() put/get {t}"

    _print_rows("1 producer -> 1 consumer, 64 B", _rows(one, base_of), "mp.Queue() (same payload)")
    print()
    _print_rows("4 producers -> 4 consumers, 64 B", _rows(four, base_of), "mp.Queue()")
    print()
    print("| round trip, 64 B | p50 | p99 | p50 / mp.Queue()'s |")
    print("|---|---:|---:|---:|")
    trips = [(_shmq_bytes(), "bytes"), (_shmq_obj("bytes"), "bytes"), (_mp_obj("bytes"), "bytes"),
             (_shmq_obj("tuple"), "tuple"), (_mp_obj("tuple"), "tuple")]
    if faster_fifo is not None:
        trips.append((_ff_get(), "bytes"))
    rtt = {}
    for peer, t in trips:
        rtt[peer.label] = roundtrip(peer, args.rounds if "shmq" in peer.label else args.rounds // 2, t)
    for peer, t in trips:
        p50, p99 = rtt[peer.label]
        base = rtt[f"mp.Queue() put/get {t}"][0]
        print(f"| {peer.label} | {p50 * 1e6:.1f} µs | {p99 * 1e6:.1f} µs | {p50 / base:.2f} |")


if __name__ == "__main__":
    main()
