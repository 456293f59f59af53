"""shmq for Python: ``multiprocessing``'s Queue, JoinableQueue, SimpleQueue, Pipe, Lock and a
shared ``str -> int`` dict, over shared memory, robust against a process killed with SIGKILL.

Swap ``multiprocessing.Queue`` for ``shmq.Queue`` by changing one import::

    from shmq import Queue          # was: from multiprocessing import Queue

Every object pickles to its name, so it passes to a ``multiprocessing.Process`` under the
``fork``, ``spawn`` and ``forkserver`` start methods, through another queue, or to a
``concurrent.futures.ProcessPoolExecutor``; the receiving process attaches on unpickling.
See ``docs/python.md`` for the differences from ``multiprocessing``.
"""

from __future__ import annotations

import io
import os
import pickle
import queue as _queue
import struct
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from multiprocessing import BufferTooShort

from . import _aio, _lifetime
from ._shmq import QueueCore, RawDict, RawLock, RawPipeEnd, RawProcessLock, RawQueue, ReadyFd, _init, snapshot
from ._shmq import dumps as _dumps, loads as _loads

__all__ = [
    "Queue",
    "JoinableQueue",
    "SimpleQueue",
    "Pipe",
    "Connection",
    "Lock",
    "RobustMutex",
    "LockNotHeldError",
    "SharedDict",
    "ShutDown",
    "Full",
    "Empty",
    "BufferTooShort",
    "unlink",
    "sweep",
    "snapshot",
    "DEFAULT_SLOT_SIZE",
    "UNBOUNDED_CAPACITY",
]

Full = _queue.Full
Empty = _queue.Empty

if hasattr(_queue, "ShutDown"):  # Python 3.13+
    ShutDown = _queue.ShutDown
else:

    class ShutDown(Exception):
        """Raised by ``put`` on a queue that was shut down, and by ``get`` once such a queue
        is drained (``queue.ShutDown`` on Python 3.13 and later)."""


#: Bytes per slot of a queue or pipe created with the defaults: the fast-path unit. A message
#: (pickled object or ``put_bytes`` payload) up to this size is copied through its slot; a
#: larger one, up to 1 GiB, travels in a side segment of its own (slower per message, no limit
#: from the slot). Every slot is reserved in ``/dev/shm`` up front, so small slots keep an
#: idle queue small.
DEFAULT_SLOT_SIZE = 256
#: The capacity of ``Queue(0)`` ("unbounded" in ``multiprocessing``): how many messages may
#: wait before ``put`` blocks. Its slots are reserved in ``/dev/shm`` up front (about 1.1 MB
#: with the default slot size), so it is large but finite.
UNBOUNDED_CAPACITY = 4096
#: Messages per direction of a pipe.
PIPE_CAPACITY = 128
#: How long a pickled ``Connection`` keeps its end open for the process that unpickles it.
HAND_OFF_SECONDS = 60.0

# Message framing, by the first byte (the native half, ``_shmq.dumps``/``loads`` and a queue's
# ``put_obj``/``get_obj``, reads and writes it). The common builtins travel without pickle,
# behind a type tag: ``bytes``, ``str`` (UTF-8, lone surrogates kept), ``int`` in the signed
# 64-bit range, ``float``, ``None``, ``bool`` and tuples of up to 16 of these. Their subclasses
# and everything else are pickled here: a plain pickle starts with the PROTO opcode (0x80). A
# pickle with out-of-band buffers (protocol 5) starts with _OOB, then the number of buffers and
# their lengths (u64 each), then the pickle, then the buffers: the receiver rebuilds them as
# memoryviews of the one received ``bytes`` object, without copying.
_OOB = 0x01
_pickle_dumps = pickle.dumps
_pickle_loads = pickle.loads


def _dumps_pickled(obj) -> bytes:
    bufs = []
    data = _pickle_dumps(obj, 5, buffer_callback=bufs.append)
    if not bufs:
        return data
    views = [b.raw() for b in bufs]
    head = struct.pack(f"<BI{len(views)}Q", _OOB, len(views), *(v.nbytes for v in views))
    return b"".join([head, data, *views])


def _loads_pickled(data: bytes):
    if not data or data[0] != _OOB:
        return _pickle_loads(data)  # a pickle, or not a shmq object message: pickle says what is wrong
    (n,) = struct.unpack_from("<I", data, 1)
    lens = struct.unpack_from(f"<{n}Q", data, 5)
    view = memoryview(data)
    end = len(data) - sum(lens)
    start = 5 + 8 * n
    bufs = []
    pos = end
    for ln in lens:
        bufs.append(view[pos : pos + ln])
        pos += ln
    return pickle.loads(view[start:end], buffers=bufs)


_init(Full, Empty, ShutDown, _dumps_pickled, _loads_pickled)

#: This process's pid, kept current across fork (os.getpid() is a system call, and the
#: handles check which process made their fds on every coroutine wait).
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def _check_timeout(timeout):
    if timeout is None:
        return None
    timeout = float(timeout)
    return 0.0 if timeout < 0 else timeout


def unlink(name: str) -> None:
    """Removes the named object ``name`` (handles already open keep working)."""
    RawQueue.unlink(name)


def sweep(min_age: float = _lifetime.SWEEP_MIN_AGE) -> list:
    """Removes anonymous segments that no live process holds (all their processes were
    killed) and that are older than ``min_age`` seconds. Returns the names removed."""
    return _lifetime.sweep(min_age)


class _Named:
    """What every shmq object shares: a name, and for anonymous objects a claim that keeps
    the segment alive while this handle lives."""

    _anonymous = False
    _name = ""

    def _adopt(self, name: str, anonymous: bool) -> None:
        self._name = name
        self._anonymous = anonymous

    @property
    def name(self) -> str:
        """The object's name in ``/dev/shm``."""
        return self._name

    def _drop_claim(self) -> None:
        if self._anonymous:
            self._anonymous = False
            try:
                _lifetime.release(self._name)
            except Exception:
                pass

    def __del__(self):
        self._drop_claim()


def _open_claimed(name: str, anonymous: bool, opener):
    """Opens ``name`` with ``opener``, taking this process's claim first for an anonymous
    object (so the last holder cannot remove it between the open and the claim)."""
    if anonymous:
        _lifetime.claim(name)
    try:
        return opener(name)
    except BaseException:
        if anonymous:
            _lifetime.release(name)
        raise


def _create_claimed(name, creator):
    anonymous = name is None
    if anonymous:
        _lifetime.sweep()
        name = _lifetime.new_name()
    raw = creator(name)
    if anonymous:
        try:
            _lifetime.claim(name)
        except BaseException:
            RawQueue.unlink(name)
            raise
    return name, anonymous, raw


def _rebuild(cls, name, anonymous, state):
    obj = cls.__new__(cls)
    obj._attach(name, anonymous, state)
    return obj


class Queue(_Named, QueueCore):
    """A process-shared FIFO queue with ``multiprocessing.Queue``'s API.

    ``maxsize`` bounds the number of messages (``0`` or less: ``UNBOUNDED_CAPACITY``).
    ``name`` creates a named queue that other programs can ``Queue.attach`` and that lives
    until ``shmq.unlink(name)``; without a name the queue is removed when the last process
    that knows it is gone. ``slot_size`` is the fast-path unit in bytes: a pickled message up
    to that size is copied through a slot, a larger one (up to 1 GiB) travels in a side segment
    of its own. All ``maxsize`` slots are reserved in ``/dev/shm`` up front: raise
    ``slot_size`` for a queue of many messages of a few KiB, keep it small to keep the queue
    small.

    Differences from ``multiprocessing.Queue``: ``put`` is done when it returns (no feeder
    thread, so ``join_thread`` and ``cancel_join_thread`` do nothing and ``qsize``/``empty``/
    ``full`` agree at once); ``close`` closes this handle only, as in ``multiprocessing``,
    while ``shutdown`` is shmq's end of work for every process: later puts raise
    ``ShutDown``, gets drain what is left and then raise ``ShutDown``.
    """

    def __init__(self, maxsize: int = 0, *, name: str | None = None, slot_size: int = DEFAULT_SLOT_SIZE, ctx=None):
        capacity = maxsize if maxsize > 0 else UNBOUNDED_CAPACITY
        self._raw = None
        self._closed = False
        name, anonymous, raw = _create_claimed(
            name, lambda n: RawQueue.create(n, capacity, slot_size)
        )
        self._raw = raw
        self._bind(raw)
        self._maxsize = maxsize if maxsize > 0 else 0
        self._adopt(name, anonymous)

    @classmethod
    def attach(cls, name: str):
        """Attaches to the existing named queue ``name``."""
        return _rebuild(cls, name, False, 0)

    def _attach(self, name, anonymous, maxsize):
        self._raw = None
        self._closed = False
        self._raw = _open_claimed(name, anonymous, RawQueue.open)
        self._bind(self._raw)
        self._maxsize = maxsize
        self._adopt(name, anonymous)

    def __reduce__(self):
        return (_rebuild, (type(self), self._name, self._anonymous, self._maxsize))

    def __repr__(self):
        return f"<shmq.{type(self).__name__} name={self._name!r} size={self.qsize() if self._raw else '?'}>"

    # Readiness fds (made on first use): "get" for fileno() (QueueCore's _getfd, which a get
    # clears once the queue is drained); the coroutines' own (armed only while a coroutine
    # waits): "get" for coro_get, "put" for coro_put.
    _coro_getfd = None
    _putfd = None

    def _check_closed(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def _get_fd(self):
        fd = self._getfd
        if fd is None or fd.closed or fd.pid != _pid:
            fd = self._getfd = self._raw.ready_fd("get")
        return fd

    def _coro_get_fd(self):
        fd = self._coro_getfd
        if fd is None or fd.closed or fd.pid != _pid:
            fd = self._coro_getfd = self._raw.ready_fd("get")
        return fd

    def _put_fd(self):
        fd = self._putfd
        if fd is None or fd.closed or fd.pid != _pid:
            fd = self._putfd = self._raw.ready_fd("put")
        return fd

    def _close_fds(self):
        for fd in (self._getfd, self._coro_getfd, self._putfd):
            if fd is not None and not fd.closed:
                _aio.closing(fd)
                fd.close()

    def fileno(self) -> int:
        """A file descriptor that is readable while a ``get`` would not block (a message
        waits, or the queue is shut down) and not readable otherwise: pass the queue to
        ``multiprocessing.connection.wait``, ``select.select``, a ``selectors`` selector or
        ``loop.add_reader``. With several consumers, another one may take the message between
        the wake-up and this process's ``get``: use ``get_nowait`` (or a timeout) after a wait.
        The fd belongs to this handle and is closed by ``close``."""
        self._check_closed()
        return self._get_fd().fileno()

    # -- objects and bytes: put, get, put_bytes and get_bytes are QueueCore's ------------
    def put_nowait(self, obj) -> None:
        """``put(obj, False)``."""
        self.put(obj, False)

    def get_nowait(self):
        """``get(False)``."""
        return self.get(False)

    # -- asyncio ------------------------------------------------------------------------
    def _try_get_bytes(self):
        try:
            return Queue.get_bytes(self, False)
        except Empty:
            return _aio.AGAIN

    def _try_put_bytes(self, data):
        try:
            Queue.put_bytes(self, data, False)
        except Full:
            return _aio.AGAIN

    async def coro_get(self):
        """``get`` for asyncio: waits on the running loop (never blocking it) until an
        object can be taken. Cancel-safe: a cancelled ``coro_get`` has taken nothing."""
        return _loads(await self.coro_get_bytes())

    async def coro_put(self, obj) -> None:
        """``put`` for asyncio: waits on the running loop while the queue is full.
        Cancel-safe: a cancelled ``coro_put`` either put ``obj`` whole or did not put it."""
        await self.coro_put_bytes(_dumps(obj))

    async def coro_get_bytes(self) -> bytes:
        """``get_bytes`` for asyncio (as ``coro_get``)."""
        return await _aio.run(self._try_get_bytes, self._coro_get_fd)

    async def coro_put_bytes(self, data) -> None:
        """``put_bytes`` for asyncio (as ``coro_put``)."""
        if type(data) is not bytes:
            data = bytes(data)
        await _aio.run(lambda: self._try_put_bytes(data), self._put_fd)

    # -- state --------------------------------------------------------------------------
    def qsize(self) -> int:
        """The number of messages in the queue (exact: no feeder thread)."""
        return self._raw.qsize()

    def empty(self) -> bool:
        return self._raw.empty()

    def full(self) -> bool:
        return self._raw.full()

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def slot_size(self) -> int:
        """The slot size in bytes: messages up to this size are copied through a slot, larger
        ones travel in a side segment."""
        return self._raw.slot_size()

    def close(self) -> None:
        """Closes this handle (later calls on it raise ``ValueError``); other handles and
        other processes are not affected, as in ``multiprocessing``. Closes the handle's
        file descriptor (``fileno``)."""
        self._closed = True
        self._close_fds()

    def join_thread(self) -> None:
        """Does nothing: a put is complete when it returns (kept for compatibility)."""
        if not self._closed:
            raise ValueError(f"Queue {self!r} not closed")

    def cancel_join_thread(self) -> None:
        """Does nothing: there is no feeder thread (kept for compatibility)."""

    def shutdown(self) -> None:
        """shmq's end of work, for every process: later puts raise ``ShutDown``, gets drain
        what is left and then raise ``ShutDown``; blocked callers wake."""
        self._raw.shutdown()

    def is_shutdown(self) -> bool:
        return self._raw.is_shutdown()


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: a ``Queue`` whose consumers call ``task_done``
    for each object, and whose ``join`` waits until every object put has been done."""

    def task_done(self) -> None:
        """Marks one object processed; ``ValueError`` if called more often than ``put``."""
        self._raw.task_done()

    def join(self, timeout: float | None = None) -> bool:
        """Waits until every object put has been marked done. ``timeout`` (a shmq
        addition) bounds the wait; returns whether the count reached zero."""
        return self._raw.join(_check_timeout(timeout))

    def unfinished(self) -> int:
        """The number of objects put and not yet marked done."""
        return self._raw.unfinished()

    async def coro_join(self) -> None:
        """``join`` for asyncio: returns once every object put has been marked done,
        without blocking the loop. While it waits, a thread of its own sleeps in ``join``
        and wakes the loop through a file descriptor when the last ``task_done`` comes
        (cancelling ``coro_join`` lets the thread go)."""
        raw = self._raw
        if raw.unfinished() == 0:
            return
        waiter = raw.join_waiter()
        try:
            while not waiter.done():
                await _aio.wait_readable(waiter)
        finally:
            waiter.close()


class SimpleQueue(Queue):
    """``multiprocessing.SimpleQueue``: ``put``, ``get``, ``empty`` and ``close``."""

    def __init__(self, *, name: str | None = None, slot_size: int = DEFAULT_SLOT_SIZE, ctx=None):
        super().__init__(0, name=name, slot_size=slot_size)

    def _check_closed(self):
        if self._closed:
            raise OSError("handle is closed")

    def put(self, obj) -> None:  # type: ignore[override]
        """Puts ``obj``, waiting while the queue is full."""
        super().put(obj)

    def get(self):  # type: ignore[override]
        """Takes the oldest object, waiting while the queue is empty."""
        return super().get()

    def empty(self) -> bool:
        """Whether the queue is empty; ``OSError`` on a closed handle, as in
        ``multiprocessing``."""
        self._check_closed()
        return super().empty()


class Connection(_Named):
    """One end of a ``Pipe``: ``multiprocessing.connection.Connection``'s API.

    ``recv`` raises ``EOFError`` once the pipe is drained and every holder of the other end
    is gone (closed, exited or killed). ``fileno`` returns a file descriptor that is readable
    exactly while ``recv`` would not block, so a connection can be waited on with
    ``multiprocessing.connection.wait``, ``select``, ``selectors`` and asyncio, next to
    sockets and process sentinels. ``coro_recv`` and ``coro_send`` are the asyncio faces.
    """

    # Readiness fds (made on first use): "recv" for fileno(); the coroutines' own (armed only
    # while a coroutine waits): "recv" for coro_recv, "send" for coro_send.
    _recvfd = None
    _coro_recvfd = None
    _sendfd = None

    def __init__(self):
        raise TypeError("use shmq.Pipe() to make connections")

    @classmethod
    def _wrap(cls, raw, name, anonymous):
        c = cls.__new__(cls)
        c._raw = raw
        c._adopt(name, anonymous)
        return c

    def _attach(self, name, anonymous, end):
        self._raw = None
        self._raw = _open_claimed(name, anonymous, lambda n: RawPipeEnd.open(n, end))
        self._adopt(name, anonymous)

    def __reduce__(self):
        if self._raw is None or self._raw.closed:
            raise OSError("handle is closed")
        # The end stays open for the unpickling process even if this handle is closed
        # right after (Process(target=f, args=(child,)).start(); child.close()).
        self._raw.hand_off(HAND_OFF_SECONDS)
        return (_rebuild, (Connection, self._name, self._anonymous, self._raw.end))

    def __repr__(self):
        state = "closed" if self.closed else self._raw.end
        return f"<shmq.Connection name={self._name!r} {state}>"

    def _live(self):
        raw = self._raw
        if raw is None or raw.closed:
            raise OSError("handle is closed")
        return raw

    @property
    def closed(self) -> bool:
        return self._raw is None or self._raw.closed

    @property
    def readable(self) -> bool:
        return self._live().can_recv()

    @property
    def writable(self) -> bool:
        return self._live().can_send()

    def _recv_fd(self):
        fd = self._recvfd
        if fd is None or fd.closed or fd.pid != _pid:
            fd = self._recvfd = self._live().ready_fd("recv")
        return fd

    def _coro_recv_fd(self):
        fd = self._coro_recvfd
        if fd is None or fd.closed or fd.pid != _pid:
            fd = self._coro_recvfd = self._live().ready_fd("recv")
        return fd

    def _send_fd(self):
        fd = self._sendfd
        if fd is None or fd.closed or fd.pid != _pid:
            fd = self._sendfd = self._live().ready_fd("send")
        return fd

    def _took(self):
        fd = self._recvfd
        if fd is not None:
            fd.after_take()

    def fileno(self) -> int:
        """A file descriptor (an eventfd) that is readable while ``recv`` would not block
        (a message waits, or end-of-file: every holder of the other end is gone) and not
        readable otherwise. It belongs to this handle (a forked child gets its own on its first
        call) and ``close`` closes it."""
        self._live()
        return self._recv_fd().fileno()

    def _writable_raw(self):
        raw = self._live()
        if not raw.can_send():
            raise OSError("connection is read-only")
        return raw

    def _readable_raw(self):
        raw = self._live()
        if not raw.can_recv():
            raise OSError("connection is write-only")
        return raw

    # The per-message calls check the handle once, in the native call (which raises the same
    # OSError for a closed handle or the wrong direction as _live and _writable_raw do): each
    # check here would be a native call and a Python frame more per message.

    def send(self, obj) -> None:
        """Sends ``obj`` (common builtins behind a type tag, anything else pickled with
        protocol 5); waits while the pipe is full."""
        raw = self._raw
        if raw is None or not raw.can_send():
            raw = self._writable_raw()  # raises before pickling, as multiprocessing does
        raw.send_obj(obj)

    def recv(self):
        """Receives an object sent with ``send``; ``EOFError`` at end-of-file."""
        raw = self._raw
        if raw is None:
            raise OSError("handle is closed")
        obj = raw.recv_obj()
        fd = self._recvfd
        if fd is not None:
            fd.after_take()
        return obj

    def _try_recv(self):
        data = self._readable_raw().recv(0.0)
        if data is None:
            return _aio.AGAIN
        self._took()
        return data

    def _try_recv_obj(self):
        raw = self._raw
        if raw is None:
            raise OSError("handle is closed")
        obj = raw.try_recv_obj(_aio.AGAIN)
        if obj is not _aio.AGAIN and self._recvfd is not None:
            self._recvfd.after_take()
        return obj

    async def coro_recv(self):
        """``recv`` for asyncio: waits on the running loop (never blocking it) until a
        message or end-of-file (``EOFError``). Cancel-safe: a cancelled ``coro_recv`` has
        received nothing."""
        return await _aio.run(self._try_recv_obj, self._coro_recv_fd)

    async def coro_recv_bytes(self) -> bytes:
        """``recv_bytes`` for asyncio (as ``coro_recv``)."""
        return await _aio.run(self._try_recv, self._coro_recv_fd)

    async def coro_send(self, obj) -> None:
        """``send`` for asyncio: waits on the running loop while the pipe is full;
        ``BrokenPipeError`` once the other end is gone. Cancel-safe: a cancelled
        ``coro_send`` either sent ``obj`` whole or did not send it."""
        raw = self._writable_raw()
        data = _dumps(obj)
        await _aio.run(lambda: None if raw.try_send(data) else _aio.AGAIN, self._send_fd)

    async def coro_send_bytes(self, buf) -> None:
        """``send_bytes`` of a whole buffer for asyncio (as ``coro_send``)."""
        raw = self._writable_raw()
        data = buf if type(buf) is bytes else bytes(memoryview(buf).cast("B"))
        await _aio.run(lambda: None if raw.try_send(data) else _aio.AGAIN, self._send_fd)

    def send_bytes(self, buf, offset: int = 0, size: int | None = None) -> None:
        """Sends the bytes of ``buf[offset:offset+size]`` as one message."""
        raw = self._raw
        if raw is not None and offset == 0 and size is None and type(buf) is bytes:
            raw.send(buf)  # the whole of a bytes object: no view, no copy
            return
        raw = self._writable_raw()
        m = memoryview(buf).cast("B")
        n = len(m)
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        raw.send(bytes(m[offset : offset + size]))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receives one message as ``bytes``; ``OSError`` if it is longer than
        ``maxlength``, ``EOFError`` at end-of-file."""
        if maxlength is None:
            raw = self._raw
            if raw is None:
                raise OSError("handle is closed")
            data = raw.recv(None)
            fd = self._recvfd
            if fd is not None:
                fd.after_take()
            return data
        if maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._readable_raw().recv(None)
        self._took()
        if maxlength is not None and len(data) > maxlength:
            self.close()
            raise OSError("bad message length")
        return data

    def recv_bytes_into(self, buf, offset: int = 0) -> int:
        """Receives one message into ``buf`` at ``offset``; returns its length. A message
        that does not fit raises ``multiprocessing.BufferTooShort`` carrying it."""
        m = memoryview(buf).cast("B")
        if offset < 0:
            raise ValueError("negative offset")
        if offset > len(m):
            raise ValueError("offset too large")
        data = self._readable_raw().recv(None)
        self._took()
        if len(data) > len(m) - offset:
            raise BufferTooShort(data)
        m[offset : offset + len(data)] = data
        return len(data)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether ``recv`` would return at once (a message, or end-of-file), waiting up to
        ``timeout`` seconds (``None``: without end)."""
        ready = self._readable_raw().poll(_check_timeout(timeout))
        if not ready and self._recvfd is not None:
            self._recvfd.after_take()  # a holder of this end elsewhere took what it announced
        return ready

    def close(self) -> None:
        """Releases this handle; when the last holder of an end closes, the other end reads
        end-of-file. Closes the connection's file descriptor (``fileno``)."""
        for fd in (self._recvfd, self._coro_recvfd, self._sendfd):
            if fd is not None and not fd.closed:
                _aio.closing(fd)
                fd.close()
        raw = self._raw
        if raw is not None:
            raw.close()
            self._drop_claim()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def Pipe(duplex: bool = True, *, name: str | None = None, capacity: int = PIPE_CAPACITY, slot_size: int = DEFAULT_SLOT_SIZE):
    """Returns a pair of ``Connection`` objects, as ``multiprocessing.Pipe``: with
    ``duplex=False``, ``(reader, writer)``."""
    name, anonymous, (a, b) = _create_claimed(
        name, lambda n: RawPipeEnd.create(n, capacity, slot_size, duplex)
    )
    if anonymous:
        _lifetime.claim(name)  # one claim per Connection
    return Connection._wrap(a, name, anonymous), Connection._wrap(b, name, anonymous)


class LockNotHeldError(ValueError, RuntimeError):
    """Raised by ``Lock.release`` of a lock that is not held: a ``ValueError`` as
    ``multiprocessing.Lock`` raises, and a ``RuntimeError`` as a ``Manager().Lock()`` (a
    ``threading.Lock`` proxy) raises, so code written for either catches it."""


class Lock(_Named):
    """A process-shared lock: ``multiprocessing.Lock``. ``acquire(block, timeout)`` and
    ``release`` and the context manager behave as there: any thread of any process may release
    a lock that another acquired, a second ``acquire`` from the holder waits (for someone to
    release), and ``release`` of a free lock raises ``ValueError``.

    Beyond ``multiprocessing``: if the process that acquired it ends without releasing
    (killed with SIGKILL, or exited), the next ``acquire`` takes it over (a waiter notices
    within 20 ms), so a killed worker never wedges the others. A lock meant to be released
    by another process after the acquiring process has ended is therefore released by that
    end. For a lock owned by the acquiring thread, see ``RobustMutex``."""

    _raw_class = RawProcessLock

    def __init__(self, *, name: str | None = None, ctx=None):
        self._raw = None
        name, anonymous, raw = _create_claimed(name, self._raw_class.create)
        self._raw = raw
        self._adopt(name, anonymous)

    @classmethod
    def attach(cls, name: str):
        """Attaches to the existing named lock ``name``."""
        return _rebuild(cls, name, False, None)

    def _attach(self, name, anonymous, _state):
        self._raw = None
        self._raw = _open_claimed(name, anonymous, self._raw_class.open)
        self._adopt(name, anonymous)

    def __reduce__(self):
        return (_rebuild, (type(self), self._name, self._anonymous, None))

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Takes the lock; returns ``False`` if it stayed held for ``timeout`` seconds (at
        once if not ``block``)."""
        return self._raw.acquire(block, _check_timeout(timeout))

    def release(self) -> None:
        """Releases the lock, whichever thread or process acquired it;
        ``LockNotHeldError`` (a ``ValueError`` and a ``RuntimeError``) if it is not held."""
        try:
            self._raw.release()
        except ValueError as e:
            raise LockNotHeldError(str(e)) from None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        holder = self._raw.holder_pid() if self._raw is not None else None
        state = "unlocked" if holder is None else f"locked by pid {holder}"
        return f"<shmq.Lock name={self._name!r} {state}>"


class RobustMutex(Lock):
    """A process-shared mutex owned by the thread that acquired it: only that thread may
    release it (``ValueError`` otherwise), and acquiring it again without a timeout from that
    thread raises ``RuntimeError`` instead of hanging. A holder killed while holding it
    releases it (the next ``acquire`` succeeds). It is the lock of C's ``shmq_lock_*`` and of
    Rust's ``shmq_dict::Lock``: they share it by name."""

    _raw_class = RawLock

    def release(self) -> None:
        """Releases the mutex; ``ValueError`` if this thread does not hold it."""
        self._raw.release()

    def __repr__(self):
        return f"<shmq.RobustMutex name={self._name!r}>"


_MISSING = object()


class _DictIterator:
    """An iterator over a snapshot of a ``SharedDict`` taken when iteration began, that
    raises ``RuntimeError`` once any process has changed the dict's size, as a ``dict``'s
    iterator does (and keeps raising, as a ``dict``'s does)."""

    __slots__ = ("_dict", "_it", "_len")

    def __init__(self, d, items):
        self._dict = d
        self._len = len(items)
        self._it = iter(items)

    def __iter__(self):
        return self

    def __next__(self):
        d = self._dict
        if d is None:
            raise StopIteration
        if d._raw.len() != self._len:
            self._len = -1
            raise RuntimeError("dictionary changed size during iteration")
        try:
            return next(self._it)
        except StopIteration:
            self._dict = None
            raise

    def __length_hint__(self):
        return 0 if self._dict is None else self._it.__length_hint__()


class _KeysView(KeysView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._iterate(lambda k, v: k)

    def __reversed__(self):
        return reversed([k for k, _ in self._mapping._raw.items()])


class _ValuesView(ValuesView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._iterate(lambda k, v: v)

    def __reversed__(self):
        return reversed([v for _, v in self._mapping._raw.items()])


class _ItemsView(ItemsView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._iterate(lambda k, v: (k, v))

    def __reversed__(self):
        return reversed(self._mapping._raw.items())


class SharedDict(_Named, MutableMapping):
    """A process-shared ``str -> int`` dict that behaves as Python's ``dict`` (and is a
    ``collections.abc.MutableMapping``): insertion order for iteration, ``keys``/``values``/
    ``items`` views, ``popitem()`` (last inserted first), ``copy()``, ``==`` with a
    ``dict``, ``RuntimeError`` when its size changes (in any process) while this process
    iterates, plus ``add(k, delta)``, one atomic read-modify-write.

    Keys are ``str`` (at most ``max_key_len`` bytes of UTF-8), values ``int`` in the range of
    a signed 64-bit integer (``True`` and ``False``, being ints, are stored as 1 and 0 and read
    back as ints): other values raise ``TypeError`` (keep objects in a ``Queue``,
    or in ``multiprocessing.Manager().dict()``). Each call is atomic on its own; a
    read-modify-write of two calls races, exactly as with a Manager dict: use ``add`` or a
    ``shmq.Lock``. Iteration walks a snapshot taken in one critical section when it begins
    (values as of then), checking the size at every step. A process killed in the middle of
    any call leaves every entry with its old or its new value.
    """

    def __init__(self, *args, name: str | None = None, capacity: int = 256, max_key_len: int = 64, **kwargs):
        self._raw = None
        name, anonymous, raw = _create_claimed(
            name, lambda n: RawDict.create(n, capacity, max_key_len)
        )
        self._raw = raw
        self._adopt(name, anonymous)
        if args or kwargs:
            self.update(*args, **kwargs)

    @classmethod
    def attach(cls, name: str):
        return _rebuild(cls, name, False, None)

    def _attach(self, name, anonymous, _state):
        self._raw = None
        self._raw = _open_claimed(name, anonymous, RawDict.open)
        self._adopt(name, anonymous)

    def __reduce__(self):
        return (_rebuild, (type(self), self._name, self._anonymous, None))

    @staticmethod
    def _key(key):
        if not isinstance(key, str):
            raise TypeError(f"SharedDict keys are str, not {type(key).__name__}")
        return key

    @staticmethod
    def _value(value):
        if not isinstance(value, int):
            raise TypeError(f"SharedDict values are int, not {type(value).__name__}")
        value = int(value)  # a bool, or another int subclass, as a plain int
        if not -(2**63) <= value < 2**63:
            raise OverflowError("SharedDict values are signed 64-bit integers")
        return value

    def _iterate(self, pick):
        return map(lambda kv: pick(*kv), _DictIterator(self, self._raw.items()))

    def __getitem__(self, key):
        v = self._raw.get(self._key(key)) if isinstance(key, str) else None
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        self._raw.insert(self._key(key), self._value(value))

    def __delitem__(self, key):
        if not isinstance(key, str) or self._raw.remove(key) is None:
            raise KeyError(key)

    def __contains__(self, key):
        return isinstance(key, str) and self._raw.contains(key)

    def __len__(self):
        return self._raw.len()

    def __iter__(self):
        return _DictIterator(self, self._raw.keys())

    def __reversed__(self):
        return reversed(self._raw.keys())

    def __eq__(self, other):
        if isinstance(other, SharedDict):
            return self.copy() == other.copy()
        if isinstance(other, Mapping):
            return self.copy() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        d = self.copy()
        d.update(other)
        return d

    def __ror__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        d = dict(other)
        d.update(self.copy())
        return d

    def __ior__(self, other):
        self.update(other)
        return self

    def get(self, key, default=None):
        if not isinstance(key, str):
            return default
        v = self._raw.get(key)
        return default if v is None else v

    def setdefault(self, key, default=0):
        """The value of ``key``, inserting ``default`` (an int, 0 if not given) first if it is
        absent, in one critical section."""
        return self._raw.setdefault(self._key(key), self._value(default))

    def pop(self, key, default=_MISSING):
        v = self._raw.remove(key) if isinstance(key, str) else None
        if v is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return v

    def popitem(self):
        """Removes and returns the last inserted ``(key, value)`` pair, in one critical
        section; ``KeyError`` if the dict is empty."""
        item = self._raw.popitem()
        if item is None:
            raise KeyError("popitem(): dictionary is empty")
        return item

    def keys(self):
        """A view of the keys in insertion order (``len``, ``in``, iteration, set operations)."""
        return _KeysView(self)

    def values(self):
        """A view of the values in insertion order."""
        return _ValuesView(self)

    def items(self):
        """A view of the ``(key, value)`` pairs in insertion order."""
        return _ItemsView(self)

    def update(self, other=(), /, **kwargs):
        """Inserts every pair of ``other`` (a mapping or pairs) and ``kwargs`` in one critical
        section; nothing is written if one does not fit."""
        pairs = other.items() if hasattr(other, "items") else other
        checked = [(self._key(k), self._value(v)) for k, v in pairs]
        checked += [(k, self._value(v)) for k, v in kwargs.items()]
        self._raw.update(checked)

    def clear(self):
        self._raw.clear()

    def copy(self) -> dict:
        """A plain ``dict`` in insertion order, taken in one critical section."""
        return dict(self._raw.items())

    def add(self, key, delta: int = 1) -> int:
        """Adds ``delta`` to ``key`` (absent: 0) atomically; returns the new value."""
        return self._raw.add(self._key(key), self._value(delta))

    def __repr__(self):
        return f"<shmq.SharedDict name={self._name!r} {self.copy()!r}>"


_lifetime.sweep()
