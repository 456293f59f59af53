"""More of CPython's tests of the objects shmq replaces (Lib/test/_test_multiprocessing.py):
_TestLock, the Lock, Queue, JoinableQueue and dict of TestSyncManagerTypes, the full
_TestContainers.test_dict_iter, TestSimpleQueue.test_empty_exceptions and
TestIgnoreEINTR.test_ignore. Written anew for shmq's types (str keys and int values for the
dict) from what each CPython test checks; each test that starts processes runs under fork,
spawn and forkserver. docs/python.md lists every CPython test considered."""

import os
import signal
import time

import pytest

import shmq
from conftest import join_all

#: A message larger than an OS pipe's buffer, as CPython's CONN_MAX_SIZE (4 MiB and a byte).
BIG = 4 * 1024 * 1024 + 1
#: Messages per direction of the pipe of test_ignore_eintr: the child fills it, so that its
#: large send blocks (CPython relies on the OS pipe's buffer being smaller than BIG; a shmq
#: pipe carries a large message in a side segment, and blocks when its slots are full).
EINTR_PIPE = 4


def _run_worker(ctx, target, *args):
    """Runs ``target(*args)`` in a child and fails if it did not exit with 0 (an assertion in
    the child is its exit code 1), as TestSyncManagerTypes.run_worker does."""
    p = ctx.Process(target=target, args=args)
    p.start()
    join_all([p])
    assert p.exitcode == 0, f"the child failed (exit code {p.exitcode})"


# -- _TestLock ----------------------------------------------------------------------------


def test_lock():
    """_TestLock.test_lock: acquire is True, a non-blocking second acquire is False, release
    returns None, and releasing an unlocked lock raises ValueError."""
    lock = shmq.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.release() is None
    with pytest.raises(ValueError):
        lock.release()


def test_lock_context():
    """_TestLock.test_lock_context: the lock is a context manager (and free afterwards)."""
    lock = shmq.Lock()
    with lock:
        assert lock.acquire(False) is False
    assert lock.acquire(False) is True
    lock.release()


# -- TestSyncManagerTypes -------------------------------------------------------------------


def _lock_in_child(lock):
    lock.acquire()


def test_manager_types_lock(ctx):
    """TestSyncManagerTypes.test_lock: a child acquires the lock and exits; the parent
    releases it; releasing again raises RuntimeError (the Manager's lock is a threading.Lock,
    whose error that is)."""
    lock = shmq.Lock()
    _run_worker(ctx, _lock_in_child, lock)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def _check_queue_in_child(q):
    assert q.qsize() == 2
    assert q.full()
    assert not q.empty()
    assert q.get() == 5
    assert not q.empty()
    assert q.get() == 6
    assert q.empty()


@pytest.mark.parametrize("kind", ["Queue", "JoinableQueue"])
def test_manager_types_queue(ctx, kind):
    """TestSyncManagerTypes.test_queue and test_joinable_queue: a queue of two holding two
    items is full; a child sees its size, takes both in order and finds it empty; so does the
    parent afterwards."""
    q = getattr(shmq, kind)(2)
    q.put(5)
    q.put(6)
    _run_worker(ctx, _check_queue_in_child, q)
    assert q.empty()
    assert not q.full()


def _check_dict_in_child(d):
    assert len(d) == 1
    assert d["foo"] == 5
    assert d.get("foo") == 5
    assert list(d.items()) == [("foo", 5)]
    assert list(d.keys()) == ["foo"]
    assert list(d.values()) == [5]
    assert d.copy() == {"foo": 5}
    assert d.popitem() == ("foo", 5)


def test_manager_types_dict(ctx):
    """TestSyncManagerTypes.test_dict: a child reads the one item through every accessor and
    pops it with popitem(); the parent then finds the dict empty."""
    d = shmq.SharedDict()
    d["foo"] = 5
    _run_worker(ctx, _check_dict_in_child, d)
    assert len(d) == 0


# -- _TestContainers ------------------------------------------------------------------------


def test_dict_iter_exhausts_and_raises_on_size_change():
    """_TestContainers.test_dict_iter: iteration yields the keys in insertion order, an
    exhausted iterator stays exhausted, and an iterator whose dict was cleared raises
    RuntimeError."""
    d = shmq.SharedDict()
    keys = [chr(i) for i in range(65, 70)]
    for k in keys:
        d[k] = ord(k)
    it = iter(d)
    assert list(it) == keys
    assert list(it) == []
    it = iter(d)
    d.clear()
    with pytest.raises(RuntimeError):
        next(it)


# -- TestSimpleQueue ------------------------------------------------------------------------


def test_simplequeue_empty_exceptions():
    """TestSimpleQueue.test_empty_exceptions: empty() on a closed SimpleQueue raises OSError
    ('is closed'), used or not."""
    q = shmq.SimpleQueue()
    q.close()
    with pytest.raises(OSError, match="is closed"):
        q.empty()
    q = shmq.SimpleQueue()
    q.put("used")
    q.close()
    with pytest.raises(OSError, match="is closed"):
        q.empty()


# -- TestIgnoreEINTR ------------------------------------------------------------------------


def _ignore_child(conn):
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    conn.send("ready")
    x = conn.recv()
    conn.send(x)
    for i in range(EINTR_PIPE):
        conn.send(i)
    conn.send_bytes(b"x" * BIG)


def test_ignore_eintr(ctx):
    """TestIgnoreEINTR.test_ignore: a signal whose handler returns, delivered while the child
    waits in recv and while it is blocked in a large send (the pipe is full), interrupts
    neither: the messages arrive whole."""
    conn, child_conn = shmq.Pipe(capacity=EINTR_PIPE)
    try:
        p = ctx.Process(target=_ignore_child, args=(child_conn,))
        p.daemon = True
        p.start()
        child_conn.close()
        assert conn.recv() == "ready"
        time.sleep(0.1)
        os.kill(p.pid, signal.SIGUSR1)
        time.sleep(0.1)
        conn.send(1234)
        assert conn.recv() == 1234
        time.sleep(0.1)
        os.kill(p.pid, signal.SIGUSR1)
        assert [conn.recv() for _ in range(EINTR_PIPE)] == list(range(EINTR_PIPE))
        assert conn.recv_bytes() == b"x" * BIG
        time.sleep(0.1)
        join_all([p])
        assert p.exitcode == 0
    finally:
        conn.close()
