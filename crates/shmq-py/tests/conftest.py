"""Fixtures of the shmq pytest suite: start methods, a watchdog, and the check that no test
leaves a segment behind in /dev/shm."""

import faulthandler
import gc
import multiprocessing as mp
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

START_METHODS = ["fork", "spawn", "forkserver"]
#: Seconds a test may run before the watchdog dumps every thread and ends the run.
WATCHDOG = float(os.environ.get("SHMQ_PY_WATCHDOG", "120"))


def shm_names(prefix=("shmq-py-", "shmq-test-")):
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


@pytest.fixture(params=START_METHODS)
def ctx(request):
    """A multiprocessing context of each start method."""
    return mp.get_context(request.param)


@pytest.fixture(autouse=True)
def watchdog():
    """A deadlock fails the run (with every thread's stack) instead of hanging CI."""
    faulthandler.dump_traceback_later(WATCHDOG, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def no_segments_left(request):
    """Every segment a test made is gone once its objects are (anonymous objects are removed
    by the last process that held them)."""
    before = shm_names()
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and (rep.failed or hasattr(rep, "wasxfail")):
        # The failure's traceback keeps the test's objects alive: they go at exit, where
        # .ci/run checks /dev/shm once more.
        return
    gc.collect()
    deadline = time.monotonic() + float(os.environ.get("SHMQ_PY_LEFTOVER_WAIT", "30"))
    while True:
        left = shm_names() - before
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
        gc.collect()
    assert not left, "segments left behind: " + "; ".join(_diagnose(n) for n in sorted(left))


def _diagnose(name):
    """Who still holds a leftover segment: flocks (pid) and live hand-off tokens."""
    from shmq._shmq import RawPipeEnd

    try:
        ino = os.stat(os.path.join("/dev/shm", name)).st_ino
    except FileNotFoundError:
        return f"{name} (gone since)"
    with open("/proc/locks") as f:
        pids = [ln.split()[4] for ln in f if ln.split()[5].endswith(f":{ino}")]
    return f"{name}: flock holders {pids}, pending hand-offs {RawPipeEnd.pending_handoffs(name)}"


def join_all(procs, timeout=60):
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
            raise AssertionError(f"{p} did not finish within {timeout} s")
