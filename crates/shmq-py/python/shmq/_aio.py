"""Waiting on shmq objects from an asyncio event loop, through their readiness file
descriptors (``_shmq.ReadyFd``): the machinery of the ``coro_*`` methods.

A coroutine first tries its operation without waiting (one non-blocking call, which either
moves a whole message or nothing). If it would block, it polls the object for up to ``SPIN``
seconds (50 us; ``sched_yield`` between checks, so a peer on the same CPU can run): a peer in
another process often answers within microseconds, sooner than a wake-up through the notifier
thread and the fd can arrive, and the blocking calls poll the same way before they sleep. That is the longest a coroutine holds the loop; set
``shmq._aio.SPIN = 0`` to never spin. Then it waits until the object's readiness fd is
readable, with the running loop's ``add_reader`` (any loop: the default one, uvloop), and
tries again. Messages move only in the non-blocking calls, between the awaits, so a cancelled
coroutine has taken or put nothing (a ``get`` loses no message, a ``put`` either put its
message or did not).

Several tasks may wait on one fd at once: one reader is registered per (loop, fd), and a
readable fd wakes every task waiting on it (each retries; the ones that lose wait again).
The coroutines wait on fds of their own, not on the ones ``fileno()`` returns: a coroutine fd
is armed (registered with the notifier) only while a coroutine waits on it, so a coroutine
that keeps finding messages at once, or within its short poll, costs the notifier nothing.
"""

from __future__ import annotations

import asyncio

#: How long (seconds) a coroutine whose operation would block watches the object before it
#: waits on the fd through the loop (it holds the loop that long at most, once per call).
SPIN = 50e-6
#: What an attempt returns when its operation would block.
AGAIN = object()

#: loop -> {fd: [futures of the tasks waiting on it]}
_waiting: dict = {}


def _fire(table: dict, fd: int) -> None:
    for f in table.get(fd, ()):
        if not f.done():
            f.set_result(None)


def closing(ready_fd) -> None:
    """Wakes every task waiting on ``ready_fd``, which its handle is about to close: they
    retry, and their operation raises (the handle is closed) instead of waiting for good."""
    fd = ready_fd.fd
    for loop, table in list(_waiting.items()):
        if fd in table and not loop.is_closed():
            loop.call_soon_threadsafe(_fire, table, fd)


async def wait_ready(ready_fd) -> None:
    """Returns once ``ready_fd`` (a coroutine ``ReadyFd``: one that only coroutines wait on)
    says its operation would not block. The fd watches only while some coroutine waits on it
    (``begin_wait``/``end_wait``)."""
    try:
        if ready_fd.begin_wait():
            return
        await wait_readable(ready_fd)
    finally:
        ready_fd.end_wait()


async def wait_readable(ready_fd) -> None:
    """Returns once the fd ``ready_fd.fd`` is readable (through the running loop's
    ``add_reader``; one reader per (loop, fd), shared by the tasks waiting on it)."""
    loop = asyncio.get_running_loop()
    fd = ready_fd.fd
    table = _waiting.get(loop)
    if table is None:
        table = _waiting[loop] = {}
    waiters = table.get(fd)
    if waiters is None:
        waiters = table[fd] = []
        loop.add_reader(fd, _fire, table, fd)
    fut = loop.create_future()
    waiters.append(fut)
    try:
        await fut
    finally:
        try:
            waiters.remove(fut)
        except ValueError:
            pass
        if not waiters and table.get(fd) is waiters:
            del table[fd]
            loop.remove_reader(fd)
            if not table and _waiting.get(loop) is table:
                del _waiting[loop]


async def run(attempt, ready_fd):
    """Runs ``attempt()`` (a non-blocking operation returning its result, or ``AGAIN`` if it
    would block) until it returns something else; ``ready_fd()`` gives the ``ReadyFd`` to wait
    on once the short retry phase is over."""
    r = attempt()
    if r is not AGAIN:
        return r
    fd = ready_fd()
    if SPIN > 0 and fd.spin(SPIN):
        r = attempt()
        if r is not AGAIN:
            return r
    while True:
        await wait_ready(fd)
        r = attempt()
        if r is not AGAIN:
            return r
