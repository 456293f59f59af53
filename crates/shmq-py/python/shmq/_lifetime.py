"""Names and lifetimes of shmq's Python objects.

An object created without a name gets a unique one (``shmq-py-<pid>-<n>-<random>``) and is
*anonymous*: it is removed when the last process that knows it lets go. Every process that
holds a handle to an anonymous object holds a shared ``flock`` on its segment file in
``/dev/shm``; the kernel drops that lock when the process exits or is killed. A process that
lets go of its last handle (or exits through ``multiprocessing``'s exit path) closes its lock
and then tries an exclusive one: if no other process holds the file, it removes the name.

If every process that knew an object was killed, no one is left to remove it; ``sweep()``
(run on import and on each new anonymous object, for segments older than a few seconds) removes
every ``shmq-py-*`` segment that no process holds.

A pickled pipe end keeps its pipe until the receiving process attaches (its hand-off token
counts as a holder). A pickled Queue, Lock or SharedDict does not: the sending process keeps
its handle until the receiver has attached (as the usual ``start()`` ... ``join()`` does).

Named objects (``name=...``) are the caller's: they are never removed automatically; call
``shmq.unlink(name)``.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
import time
from multiprocessing import util

SHM_DIR = "/dev/shm"
PREFIX = "shmq-py-"
#: Segments younger than this are left alone by automatic sweeps: their creator may be
#: between creating the segment and taking its lock.
SWEEP_MIN_AGE = 5.0
#: What the core puts between a queue's name and the numbers of a large message's side segment.
BIG_INFIX = ".big."

# Reentrant: a handle collected by the garbage collector while this thread is inside claim or
# release calls release from its __del__.
_lock = threading.RLock()
# name -> [fd, count of live handles in this process]
_claims: dict = {}
_counter = 0


def new_name() -> str:
    """A fresh, unique name for an anonymous object."""
    global _counter
    with _lock:
        _counter += 1
        n = _counter
    return f"{PREFIX}{os.getpid()}-{n}-{secrets.token_hex(4)}"


def _path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


def claim(name: str) -> None:
    """Registers one more handle of this process on the anonymous object ``name``."""
    with _lock:
        c = _claims.get(name)
        if c is not None:
            c[1] += 1
            return
        fd = os.open(_path(name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        _claims[name] = [fd, 1]


def _pending(name: str) -> bool:
    """Whether a pickled handle of ``name`` is on its way to a process that has not attached
    yet (a pipe end handed off and not yet opened): then the name must stay."""
    from ._shmq import RawPipeEnd

    return bool(RawPipeEnd.pending_handoffs(name))


def _remove_if_unheld(name: str) -> bool:
    """Removes ``name`` if no process holds a claim on it and no pickled handle of it is on
    its way; returns whether it did."""
    try:
        fd = os.open(_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            # Only the file this lock is on: a new object of the same name is not ours.
            if os.fstat(fd).st_ino != os.stat(_path(name)).st_ino:
                return False
            if _pending(name):
                return False
            from ._shmq import RawQueue

            # The core's unlink also removes the side segments of large messages still queued.
            RawQueue.unlink(name)
            return True
        except FileNotFoundError:
            return False
    finally:
        os.close(fd)


def release(name: str) -> None:
    """Drops one handle of this process; the last one removes the object if no other
    process holds it."""
    with _lock:
        c = _claims.get(name)
        if c is None:
            return
        c[1] -= 1
        if c[1] > 0:
            return
        del _claims[name]
        os.close(c[0])
        _remove_if_unheld(name)


def release_all() -> None:
    """Lets go of every claim of this process (its exit path)."""
    with _lock:
        names = list(_claims)
        for name in names:
            fd, _ = _claims.pop(name)
            os.close(fd)
            _remove_if_unheld(name)


def sweep(min_age: float = SWEEP_MIN_AGE) -> list:
    """Removes every ``shmq-py-*`` segment older than ``min_age`` seconds that no process
    holds (left by processes that were all killed). Returns the names removed."""
    removed = []
    try:
        entries = os.listdir(SHM_DIR)
    except OSError:
        return removed
    now = time.time()
    present = set(entries)
    for name in entries:
        if not name.startswith(PREFIX) or name in _claims:
            continue
        if BIG_INFIX in name:
            # A large message's side segment (issue 11): its queue's consumer or unlink removes
            # it; the sweep only takes those whose queue is gone.
            if name.split(BIG_INFIX, 1)[0] in present:
                continue
            try:
                if now - os.stat(_path(name)).st_ctime >= min_age:
                    os.unlink(_path(name))
                    removed.append(name)
            except FileNotFoundError:
                pass
            continue
        try:
            age = now - os.stat(_path(name)).st_ctime
        except FileNotFoundError:
            continue
        if age >= min_age and _remove_if_unheld(name):
            removed.append(name)
    return removed


class _ExitHook:
    """Keeps ``release_all`` registered with multiprocessing's exit path in this process and,
    through ``register_after_fork``, in every forked child (whose registry is cleared)."""

    def register(self) -> None:
        util.Finalize(None, release_all, exitpriority=-100)


def _reinit_lock_in_child() -> None:
    # Another thread of the parent may have held the lock at the fork.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_reinit_lock_in_child)

_hook = _ExitHook()
_hook.register()
util.register_after_fork(_hook, _ExitHook.register)
