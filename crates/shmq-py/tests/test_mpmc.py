"""Many producer and consumer processes on one small-slot queue: a healthy queue never reports
itself corrupt. Each consumer's `get_bytes` takes the ring's lock for a zero-copy read while
lock-free puts and gets move the positions, and `get_bytes` raised `RuntimeError: corrupt
segment: impossible positions` in about one run in three of this test before the position
check read `head` before `tail`."""

import multiprocessing as mp
import os

import pytest
import shmq

from _workers import stress_get_bytes, stress_put_bytes

#: Messages each producer puts per run (SHMQ_PY_MPMC_COUNT; the default is the report's).
COUNT = int(os.environ.get("SHMQ_PY_MPMC_COUNT", "200000"))


@pytest.mark.parametrize("run", range(10))
def test_four_producers_four_consumers_get_bytes_never_report_corrupt(run):
    ctx = mp.get_context("fork")
    q = shmq.Queue(256, slot_size=128)
    out = ctx.Queue()
    ps = [ctx.Process(target=stress_put_bytes, args=(q, COUNT)) for _ in range(4)]
    cs = [ctx.Process(target=stress_get_bytes, args=(q, out)) for _ in range(4)]
    for p in cs + ps:
        p.start()
    results = [out.get(timeout=120) for _ in cs]
    for p in cs + ps:
        p.join(timeout=60)
        assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"
    errors = [r for r in results if r[0] != "ok"]
    assert errors == [], f"run {run}: {errors}"
    assert sum(k for _, k in results) == 4 * COUNT
    assert q.empty()
