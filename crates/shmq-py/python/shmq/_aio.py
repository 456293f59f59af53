"""Waiting on shmq objects from an asyncio event loop, through their readiness file
descriptors (``_shmq.ReadyFd``): the machinery of the ``coro_*`` methods.

A coroutine first tries its operation without waiting (one non-blocking call, which either
moves a whole message or nothing). If it would block, it waits until the object's readiness fd
is readable, with the running loop's ``add_reader`` (any loop: the default one, uvloop), then
tries again. The only ``await`` is that wait, so a cancelled coroutine has taken or put nothing
(a ``get`` loses no message, a ``put`` either put its message before the wait or not at all).

Several tasks may wait on one fd at once: one reader is registered per (loop, fd), and a
readable fd wakes every task waiting on it (each retries; the ones that lose wait again).
"""

from __future__ import annotations

import asyncio

#: loop -> {fd: [futures of the tasks waiting on it]}
_waiting: dict = {}


def _fire(table: dict, fd: int) -> None:
    for f in table.get(fd, ()):
        if not f.done():
            f.set_result(None)


async def wait_ready(ready_fd) -> None:
    """Returns once ``ready_fd`` (a ``ReadyFd``) says its operation would not block."""
    if ready_fd.refresh():
        return
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


async def wait_until(check, first: float = 0.0002, longest: float = 0.005) -> None:
    """Returns once ``check()`` is true, checking with a growing pause (``first`` to
    ``longest`` seconds) between tries: for conditions without a readiness fd (``join``)."""
    delay = first
    while not check():
        await asyncio.sleep(delay)
        delay = min(delay * 2, longest)
