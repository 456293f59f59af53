"""shmq.Lock as multiprocessing.Lock (any thread or process may release it, a second acquire
from the holder waits), its repair after a holder process ends, and RobustMutex (the mutex
owned by a thread), with real processes."""

import os
import threading
import time

import pytest

import shmq
from conftest import join_all


def _release(lock, out):
    try:
        lock.release()
        out.put("released")
    except Exception as e:  # noqa: BLE001 - the report is the assertion's subject
        out.put(repr(e))


def _acquire_then_wait(lock, ready, go):
    lock.acquire()
    ready.put(os.getpid())
    go.get(timeout=60)


def _acquire_and_report(lock, out):
    t0 = time.monotonic()
    ok = lock.acquire(timeout=30)
    out.put((ok, time.monotonic() - t0))
    if ok:
        lock.release()


def _acquire_and_exit(lock, ready):
    lock.acquire()
    ready.put(os.getpid())


def test_lock_acquired_here_is_released_by_a_child(ctx):
    """multiprocessing documents that any process may release the lock: a child releases
    what the parent acquired, and the parent can then take it again."""
    lock = shmq.Lock()
    out = shmq.Queue()
    assert lock.acquire() is True
    p = ctx.Process(target=_release, args=(lock, out))
    p.start()
    assert out.get(timeout=60) == "released"
    join_all([p])
    assert lock.acquire(False) is True
    lock.release()


def test_lock_acquired_by_a_child_is_released_here(ctx):
    """The reverse: a live child holds the lock; the parent releases it and takes it."""
    lock = shmq.Lock()
    ready, go = shmq.Queue(), shmq.Queue()
    p = ctx.Process(target=_acquire_then_wait, args=(lock, ready, go))
    p.start()
    pid = ready.get(timeout=60)
    assert lock.acquire(False) is False
    assert f"locked by pid {pid}" in repr(lock)
    lock.release()
    assert lock.acquire(timeout=5) is True
    go.put("exit")
    join_all([p])
    assert p.exitcode == 0
    lock.release()


def test_lock_waiter_is_woken_by_a_release_from_a_third_process(ctx):
    """The parent holds the lock; one child waits in acquire; another child releases: the
    waiter gets the lock at once (a wake-up, not a timeout)."""
    lock = shmq.Lock()
    out, rel = shmq.Queue(), shmq.Queue()
    lock.acquire()
    waiter = ctx.Process(target=_acquire_and_report, args=(lock, out))
    waiter.start()
    time.sleep(0.5)
    releaser = ctx.Process(target=_release, args=(lock, rel))
    releaser.start()
    assert rel.get(timeout=60) == "released"
    ok, waited = out.get(timeout=60)
    join_all([waiter, releaser])
    assert ok is True and waited < 30
    assert lock.acquire(timeout=5) is True
    lock.release()


def test_second_acquire_from_the_holder_waits_for_another_thread():
    """As multiprocessing.Lock: the holder's second acquire blocks until another thread
    releases (no RuntimeError, no ValueError on the other thread's release)."""
    lock = shmq.Lock()
    assert lock.acquire() is True
    assert lock.acquire(timeout=0.05) is False
    t = threading.Timer(0.2, lock.release)
    t.start()
    t0 = time.monotonic()
    assert lock.acquire(timeout=10) is True
    assert time.monotonic() - t0 >= 0.1
    t.join()
    lock.release()
    with pytest.raises(ValueError):
        lock.release()


def test_lock_of_a_process_that_exited_holding_it_is_taken_over(ctx):
    """A holder process that ends without releasing does not wedge the lock: the next
    acquire takes it over."""
    lock = shmq.Lock()
    ready = shmq.Queue()
    p = ctx.Process(target=_acquire_and_exit, args=(lock, ready))
    p.start()
    ready.get(timeout=60)
    join_all([p])
    assert p.exitcode == 0
    assert lock.acquire(timeout=10) is True
    lock.release()


def test_robust_mutex_is_owned_by_its_thread():
    """RobustMutex keeps the thread-owned semantics: another thread cannot release it, and
    the holder's second blocking acquire raises instead of hanging."""
    m = shmq.RobustMutex()
    assert m.acquire() is True
    errors = []

    def other():
        try:
            m.release()
        except ValueError as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1
    with pytest.raises(RuntimeError):
        m.acquire()
    m.release()


def test_lock_and_robust_mutex_do_not_open_each_other():
    """The two locks have different formats: opening one as the other is a clear error."""
    lock = shmq.Lock()
    m = shmq.RobustMutex()
    with pytest.raises(ValueError, match="any process may release"):
        shmq.RobustMutex.attach(lock.name)
    with pytest.raises(ValueError, match="owned by a thread"):
        shmq.Lock.attach(m.name)
