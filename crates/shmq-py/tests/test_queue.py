"""Queue, JoinableQueue and SimpleQueue: the semantics of CPython's _TestQueue and
_TestSimpleQueue (Lib/test/_test_multiprocessing.py), ported to shmq with real processes
under each start method, plus shmq's additions (put_bytes, shutdown, out-of-band pickles)."""

import collections
import os
import pickle
import queue
import struct
import time

import pytest

import shmq
from conftest import join_all
import _workers as w


def test_put(ctx):
    """_TestQueue.test_put: put with block/timeout, Full, and the sizes, with a child that
    empties the queue afterwards."""
    MAXSIZE = 6
    q = shmq.Queue(maxsize=MAXSIZE)
    out = shmq.Queue()
    assert q.empty() and not q.full() and q.qsize() == 0
    q.put(1)
    q.put(2, True)
    q.put(3, True, None)
    q.put(4, False)
    q.put(5, False, None)
    q.put_nowait(6)
    assert q.full() and not q.empty() and q.qsize() == MAXSIZE
    with pytest.raises(queue.Full):
        q.put(7, False)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(7, True, 0.2)
    assert time.monotonic() - t0 >= 0.19
    with pytest.raises(queue.Full):
        q.put_nowait(7)
    p = ctx.Process(target=w.get_n_into, args=(q, out, MAXSIZE))
    p.start()
    assert out.get(timeout=60) == [1, 2, 3, 4, 5, 6]
    join_all([p])
    assert p.exitcode == 0
    assert q.empty() and q.qsize() == 0


def test_get(ctx):
    """_TestQueue.test_get: get with block/timeout and Empty, fed by a child."""
    q = shmq.Queue()
    p = ctx.Process(target=w.put_items, args=(q, [1, 2, 3, 4]))
    p.start()
    join_all([p])
    assert q.qsize() == 4 and not q.empty()
    assert q.get() == 1
    assert q.get(True) == 2
    assert q.get(True, None) == 3
    assert q.get(False) == 4
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get(False)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(True, 0.2)
    assert time.monotonic() - t0 >= 0.19
    with pytest.raises(queue.Empty):
        q.get_nowait()


def test_fork(ctx):
    """_TestQueue.test_fork: a child puts many objects into a queue made before it started;
    the parent reads them all in order."""
    q = shmq.Queue()
    p = ctx.Process(target=w.put_range_then_done, args=(q, 1000))
    p.start()
    got = [q.get(timeout=60) for _ in range(1000)]
    join_all([p])
    assert got == list(range(1000))
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)


def test_qsize():
    """_TestQueue.test_qsize: qsize follows puts and gets exactly (no feeder thread)."""
    q = shmq.Queue()
    assert q.qsize() == 0
    q.put(1)
    assert q.qsize() == 1
    q.put(5)
    assert q.qsize() == 2
    q.get()
    assert q.qsize() == 1
    q.get()
    assert q.qsize() == 0


def test_task_done(ctx):
    """_TestQueue.test_task_done: workers call task_done; join returns when all are done."""
    q = shmq.JoinableQueue()
    workers = [ctx.Process(target=w.joinable_worker, args=(q,)) for _ in range(4)]
    for p in workers:
        p.start()
    for i in range(10):
        q.put(i)
    assert q.join(timeout=60)
    assert q.unfinished() == 0
    for _ in workers:
        q.put(None)
    assert q.join(timeout=60)
    join_all(workers)


def test_task_done_too_many():
    """task_done more often than put raises ValueError, as JoinableQueue does."""
    q = shmq.JoinableQueue()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()


def test_timeout():
    """_TestQueue.test_timeout: get(timeout) waits at least the timeout before Empty."""
    q = shmq.Queue()
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(True, 0.2)
    assert time.monotonic() - start >= 0.19


def test_closed_queue_put_get_exceptions():
    """_TestQueue.test_closed_queue_put_get_exceptions: after close, put and get on that
    handle raise ValueError (both for Queue and JoinableQueue)."""
    for q in (shmq.Queue(), shmq.JoinableQueue()):
        q.close()
        with pytest.raises(ValueError, match="is closed"):
            q.put("foo")
        with pytest.raises(ValueError, match="is closed"):
            q.get()
        q.join_thread()  # harmless once closed


def test_close_is_per_handle(ctx):
    """close closes this handle only (multiprocessing's meaning): another process keeps
    using the queue."""
    q = shmq.Queue()
    other = pickle.loads(pickle.dumps(q))
    q.close()
    p = ctx.Process(target=w.put_items, args=(other, ["after close"]))
    p.start()
    join_all([p])
    assert other.get(timeout=10) == "after close"


def test_simplequeue_empty(ctx):
    """_TestSimpleQueue.test_empty: empty() before, during and after a child's puts."""
    q = shmq.SimpleQueue()
    assert q.empty()
    p = ctx.Process(target=w.put_items, args=(q, [1, 2]))
    p.start()
    join_all([p])
    assert not q.empty()
    assert q.get() == 1
    assert q.get() == 2
    assert q.empty()


def test_simplequeue_close():
    """_TestSimpleQueue.test_close: close twice is fine; the handle is then unusable."""
    q = shmq.SimpleQueue()
    q.close()
    q.close()
    with pytest.raises(OSError):
        q.get()


def test_shutdown_drains_then_raises(ctx):
    """shmq's end of work: after shutdown, puts raise ShutDown everywhere, gets drain what is
    left and then raise ShutDown (not a timeout, not a sentinel)."""
    q = shmq.Queue()
    q.put(1)
    q.put(2)
    q.shutdown()
    assert q.is_shutdown()
    with pytest.raises(shmq.ShutDown):
        q.put(3)
    out = shmq.Queue()
    p = ctx.Process(target=w.get_n_into, args=(q, out, 2))
    p.start()
    assert out.get(timeout=60) == [1, 2]
    join_all([p])
    with pytest.raises(shmq.ShutDown):
        q.get(timeout=5)


def test_put_bytes_get_bytes():
    """put_bytes/get_bytes move bytes without pickling; any bytes-like object goes in."""
    q = shmq.Queue(4)
    q.put_bytes(b"abc")
    q.put_bytes(bytearray(b"de"))
    q.put_bytes(memoryview(b"xfgx")[1:3])
    assert [q.get_bytes(), q.get_bytes(), q.get_bytes()] == [b"abc", b"de", b"fg"]
    with pytest.raises(queue.Empty):
        q.get_bytes(False)


def test_maxsize_zero_is_large():
    """maxsize=0 (and negative) means a large queue, as in multiprocessing."""
    for m in (0, -1):
        q = shmq.Queue(m)
        assert q.maxsize == 0
        for i in range(1000):
            q.put_nowait(i)
        assert q.qsize() == 1000 and not q.full()


def _core_has_large_messages():
    """Whether the shmq core this package was built with carries messages larger than a slot
    (issue 11); until it does, a larger put is a ValueError."""
    q = shmq.Queue(1, slot_size=64)
    try:
        q.put_bytes(b"x" * 65, block=False)
        return True
    except ValueError:
        return False


def test_message_larger_than_a_slot():
    """A message larger than a slot passes whole on a core with large messages (issue 11);
    on a core without them it is a clear ValueError and nothing is lost."""
    q = shmq.Queue(2, slot_size=64)
    q.put("ok")
    if _core_has_large_messages():
        q.put_bytes(b"x" * 65)
        assert q.qsize() == 2 and q.get() == "ok" and q.get_bytes() == b"x" * 65
    else:
        with pytest.raises(ValueError):
            q.put_bytes(b"x" * 65)
        assert q.qsize() == 1 and q.get() == "ok"


def test_out_of_band_buffers_roundtrip(ctx):
    """Large buffers travel out of band (pickle protocol 5) and arrive intact."""
    q = shmq.Queue(2, slot_size=1 << 16)
    payload = [bytearray(b"\x01" * 20000), pickle.PickleBuffer(b"\x02" * 5000), "small", b"b"]
    q.put(payload)
    got = q.get()
    assert got[0] == bytearray(b"\x01" * 20000)
    assert bytes(got[1]) == b"\x02" * 5000
    assert got[2:] == ["small", b"b"]
    p = ctx.Process(target=w.put_items, args=(q, [bytearray(b"z" * 30000)]))
    p.start()
    join_all([p])
    assert q.get(timeout=10) == bytearray(b"z" * 30000)


@pytest.mark.xfail(
    not _core_has_large_messages(),
    reason="objects larger than a slot need issue #11 (big) in the core: not on main yet",
    strict=True,
)
def test_three_mib_object_through_queue_of_two(ctx):
    """A 3 MiB object passes through Queue(2) like any other."""
    q = shmq.Queue(2)
    size = 3 << 20
    p = ctx.Process(target=w.big_roundtrip, args=(q, size))
    p.start()
    got = None
    while got is None:
        try:
            got = q.get(timeout=0.2)
        except queue.Empty:
            if not p.is_alive():
                break
    join_all([p])
    assert p.exitcode == 0
    assert got == b"\x07" * size


def test_unbounded_queue_reserves_little_shm():
    """Queue() reserves its slots in /dev/shm up front: small slots keep that about 1 MB, not
    the 16.8 MB of 4096 slots of 4 KiB; a message larger than a slot still passes whole."""
    name = f"shmq-test-py-reserve-{os.getpid()}"
    q = shmq.Queue(name=name)
    try:
        size = os.stat(f"/dev/shm/{name}").st_size
        assert size < 2 << 20, f"Queue() reserves {size} bytes"
        assert q.slot_size == shmq.DEFAULT_SLOT_SIZE <= 1024
        big = {"blob": b"z" * 100_000, "n": list(range(1000))}
        q.put(big)
        assert q.get(timeout=10) == big
    finally:
        shmq.unlink(name)


def test_help_says_slot_size_is_the_fast_path_unit():
    """help(shmq.Queue) no longer calls slot_size the largest pickled message."""
    import pydoc

    text = pydoc.render_doc(shmq.Queue, renderer=pydoc.plaintext)
    assert "largest pickled message" not in text
    assert "largest message in bytes" not in text
    assert "fast-path unit" in text and "side segment" in text


def _echo_objects(q, out, n):
    for _ in range(n):
        out.put(q.get())


class _Int(int):
    pass


FAST_OBJECTS = [b"", b"\x80pickle-looking", b"x" * 1000, "", "text", "\udc80 lone surrogate",
                "é" * 300, 0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**40, 1.5,
                float("inf"), -0.0, None, True, False, (1, "a"), {"k": 1},
                (), (7, "task", 2.5, None, True, b"\x00b", "\udc80"), tuple(range(16)),
                tuple(range(17)), (1, (2, 3)), (2**63,), (_Int(3), 1), ("é" * 300, b"y" * 500),
                {}, {"id": 3, "op": "put", "w": 1.5, "\udc80": None, "b": b"", "t": True},
                {str(i): i for i in range(16)}, {str(i): i for i in range(17)}, {1: 2},
                {"t": (1,)}, collections.OrderedDict(a=1), {"n": 2**64}]


def test_builtins_travel_without_pickle_and_keep_their_type(ctx):
    """bytes, str, int (64-bit), float, None, bool, tuples of up to 16 of them and dicts of
    up to 16 str keys to them travel behind a one-byte type tag, not pickled; every object
    (ints beyond 64 bits, subclasses, longer or nested tuples and dicts: pickled) comes back
    equal and of the same type, in the same order, through a child and back, and through a
    pipe."""
    q, out = shmq.Queue(), shmq.Queue()
    q.put(b"abc")
    q.put("abc")
    q.put(-2)
    q.put(0.5)
    q.put(None)
    q.put(True)
    q.put((5, "ab", b"c", None, False, 0.5))
    q.put(tuple(range(17)))
    q.put((1, (2,)))
    q.put({"k": 7, "é": "v"})
    q.put({"k": [1]})
    assert q.get_bytes() == b"\x02abc"
    assert q.get_bytes() == b"\x03abc"
    assert q.get_bytes() == b"\x04" + (-2).to_bytes(8, "little", signed=True)
    assert q.get_bytes() == b"\x05" + struct.pack("<d", 0.5)
    assert q.get_bytes() == b"\x06"
    assert q.get_bytes() == b"\x08\x01"
    assert q.get_bytes() == (b"\x07\x06" + b"\x04" + (5).to_bytes(8, "little") + b"\x03\x02\x00\x00\x00ab"
                             + b"\x02\x01\x00\x00\x00c" + b"\x06" + b"\x08\x00" + b"\x05" + struct.pack("<d", 0.5))
    assert q.get_bytes()[:1] == b"\x80"  # 17 items: pickled
    assert q.get_bytes()[:1] == b"\x80"  # a nested tuple: pickled
    assert q.get_bytes() == (b"\x09\x02" + b"\x01\x00\x00\x00k" + b"\x04" + (7).to_bytes(8, "little")
                             + b"\x02\x00\x00\x00\xc3\xa9" + b"\x03\x01\x00\x00\x00v")
    assert q.get_bytes()[:1] == b"\x80"  # a list value: pickled
    p = ctx.Process(target=_echo_objects, args=(q, out, len(FAST_OBJECTS)))
    p.start()
    for o in FAST_OBJECTS:
        q.put(o)
    got = [out.get(timeout=60) for _ in FAST_OBJECTS]
    join_all([p])
    assert got == FAST_OBJECTS
    def kinds(objs):
        return [(type(o), *map(type, o)) if type(o) is tuple
                else (type(o), *((k, type(v)) for k, v in o.items())) if isinstance(o, dict)
                else type(o) for o in objs]

    assert kinds(got) == kinds(FAST_OBJECTS)
    a, b = shmq.Pipe()
    for o in FAST_OBJECTS:
        a.send(o)
    assert [b.recv() for _ in FAST_OBJECTS] == FAST_OBJECTS


def test_a_damaged_tagged_message_raises_value_error():
    """A message with a type tag whose value is cut short (written with put_bytes) raises
    ValueError from get, naming the damage, instead of returning something else."""
    q = shmq.Queue()
    for bad in (b"\x07\x02\x04" + bytes(8), b"\x04\x01", b"\x07\x01\x03\x09\x00\x00\x00ab", b"\x07\x01\x0f",
                b"\x09\x02" + (b"\x01\x00\x00\x00k\x06") * 2, b"\x09\x01\x05\x00\x00\x00k\x06"):
        q.put_bytes(bad)
        with pytest.raises(ValueError, match="damaged shmq object message"):
            q.get(timeout=10)
    q.put_bytes(b"\x04" + (9).to_bytes(8, "little"))
    assert q.get(timeout=10) == 9


def test_block_is_any_truth_value_and_put_bytes_any_buffer():
    """As multiprocessing.Queue: `block` is tested for truth (get(0) and get(block=None) do not
    wait, put(x, 1) may), and put_bytes takes any bytes-like object."""
    q = shmq.Queue(1)
    for block in (0, None, ""):
        with pytest.raises(queue.Empty):
            q.get(block)
        with pytest.raises(queue.Empty):
            q.get_bytes(block=block, timeout=30)
    q.put_bytes(memoryview(b"abc"), 1)
    with pytest.raises(queue.Full):
        q.put("x", 0)
    assert q.get_bytes(1, 5) == b"abc"
    q.put_bytes(bytearray(b"de"), block=[1])
    assert q.get_bytes() == b"de"


def test_empty_and_full_are_raised_bare_as_the_standard_library_does():
    """get_nowait on an empty queue and put_nowait on a full one raise queue.Empty() and
    queue.Full() without arguments, as queue.Queue and multiprocessing.Queue do."""
    q = shmq.Queue(1)
    with pytest.raises(queue.Empty) as empty:
        q.get_nowait()
    assert empty.value.args == ()
    q.put(1)
    with pytest.raises(queue.Full) as full:
        q.put_nowait(2)
    assert full.value.args == ()
    with pytest.raises(queue.Empty) as timed_out:
        shmq.Queue().get(timeout=0.01)
    assert timed_out.value.args == ()


#: Strings that travel behind the str tag: empty, ASCII, 2-, 3- and 4-byte UTF-8, NUL, lone
#: surrogates (sent with surrogatepass), a surrogate pair written as two code points (which
#: stays two code points), and large ones (past the slot, in a side segment), ASCII and not.
STRS = ["", "a", "text", "\x00nul\x00", "é" * 300, "日本語のテキスト", "😀 emoji 𝄞", "\udc80 lone surrogate",
        "\ud83d", "\ud83d\ude00", "ok \udfff" * 50, "x" * (1 << 20), "ü€😀" * 100_000 + "\udc80"]


def test_str_round_trips_through_queues_pipes_tuples_and_dicts(ctx):
    """Every string of STRS comes back equal (same code points, type str) through a child and
    back, through a pipe, and inside a tuple and as a dict key and value; its message is the
    str tag and its UTF-8 (surrogatepass)."""
    q, out = shmq.Queue(), shmq.Queue()
    for s in STRS:
        assert shmq._shmq.dumps(s) == b"\x03" + s.encode("utf-8", "surrogatepass")
        assert shmq._shmq.loads(shmq._shmq.dumps(s)) == s
    objs = STRS + [tuple(STRS[:10]), {s: s for s in STRS[:10]}]
    p = ctx.Process(target=_echo_objects, args=(q, out, len(objs)))
    p.start()
    for o in objs:
        q.put(o)
    got = [out.get(timeout=60) for _ in objs]
    join_all([p])
    assert got == objs
    assert [len(s) for s in got[: len(STRS)]] == [len(s) for s in STRS]
    assert all(type(s) is str for s in got[: len(STRS)])
    assert shmq._shmq.dumps(objs[-2])[:1] == b"\x07" and shmq._shmq.dumps(objs[-1])[:1] == b"\x09"
    a, b = shmq.Pipe()
    for s in STRS:
        a.send(s)
        assert b.recv() == s


def test_a_str_message_that_is_not_utf8_raises_unicode_decode_error():
    """A str-tagged message whose bytes are not UTF-8 (even with surrogatepass) raises the
    UnicodeDecodeError that bytes.decode("utf-8", "surrogatepass") raises, message and all."""
    q = shmq.Queue()
    for bad in (b"\xff", b"ab\xc3", b"\xed\xa0", b"ok\x80ok"):
        with pytest.raises(UnicodeDecodeError) as want:
            bad.decode("utf-8", "surrogatepass")
        q.put_bytes(b"\x03" + bad)
        with pytest.raises(UnicodeDecodeError) as got:
            q.get(timeout=10)
        assert str(got.value) == str(want.value)
        with pytest.raises(UnicodeDecodeError):
            shmq._shmq.loads(b"\x03" + bad)
    q.put("still works")
    assert q.get(timeout=10) == "still works"


def test_str_utf8_is_borrowed_where_the_interpreter_exports_it():
    """Where CPython's PyUnicode_AsUTF8AndSize is visible in the process (ctypes.pythonapi
    looks in the same global scope), a str is encoded without an intermediate bytes object."""
    import ctypes

    try:
        ctypes.pythonapi.PyUnicode_AsUTF8AndSize
    except AttributeError:
        pytest.skip("this interpreter does not export PyUnicode_AsUTF8AndSize")
    assert shmq._shmq._borrows_str_utf8()


_STR_CHILD = """
import pickle, sys
import shmq
strs = pickle.load(sys.stdin.buffer)
q = shmq.Queue()
got = []
for s in strs:
    q.put(s)
    got.append((shmq._shmq.dumps(s), q.get(timeout=30) == s, shmq._shmq.dumps((s, 1))))
pickle.dump((shmq._shmq._borrows_str_utf8(), got), sys.stdout.buffer)
"""


def test_str_messages_are_the_same_without_the_interpreter_lookup():
    """With SHMQ_PY_NO_UTF8_LOOKUP set, a process encodes str into a bytes object instead: the
    messages are byte for byte the same and round trip the same."""
    import subprocess
    import sys

    env = dict(os.environ, SHMQ_PY_NO_UTF8_LOOKUP="1")
    r = subprocess.run([sys.executable, "-c", _STR_CHILD], input=pickle.dumps(STRS), env=env,
                       capture_output=True, timeout=120, check=True)
    borrowed, got = pickle.loads(r.stdout)
    assert borrowed is False
    assert got == [(shmq._shmq.dumps(s), True, shmq._shmq.dumps((s, 1))) for s in STRS]
