"""Pipe and Connection: the semantics of CPython's _TestConnection, _TestPoll and
_TestPollEintr, ported to shmq with real processes under each start method, plus the
hand-off patterns (the child end passed to a Process and closed in the parent)."""

import array
import os
import pickle
import signal
import time
from multiprocessing import BufferTooShort

import pytest

import shmq
from conftest import join_all
import _workers as w


def test_connection(ctx):
    """_TestConnection.test_connection: send/recv of objects and bytes, recv_bytes_into with
    offsets and BufferTooShort, poll, and EOF after the child closes — against an echo child."""
    conn, child_conn = shmq.Pipe()
    p = ctx.Process(target=w.echo_conn, args=(child_conn,))
    p.daemon = True
    p.start()
    child_conn.close()

    seq = [1, 2.25, None]
    msg = b"hello world"
    longmsg = msg * 10
    arr = array.array("i", range(4))

    assert conn.poll() is False
    conn.send_bytes(pickle.dumps(seq))
    assert pickle.loads(conn.recv_bytes()) == seq
    conn.send(seq)  # echoed as bytes: the pickle comes back
    conn.send_bytes(pickle.dumps(seq))  # and recv unpickles what send_bytes sent
    assert pickle.loads(conn.recv_bytes()) == seq
    assert conn.recv() == seq

    conn.send_bytes(msg)
    assert conn.recv_bytes() == msg

    conn.send_bytes(arr)
    buf = array.array("i", [0] * 10)
    expected = list(arr) + [0] * (10 - len(arr))
    assert conn.recv_bytes_into(buf) == len(arr) * buf.itemsize
    assert list(buf) == expected

    conn.send_bytes(arr)
    buf = array.array("i", [0] * 10)
    expected = [0] * 3 + list(arr) + [0] * (10 - 3 - len(arr))
    assert conn.recv_bytes_into(buf, 3 * buf.itemsize) == len(arr) * buf.itemsize
    assert list(buf) == expected

    buf = bytearray()
    conn.send_bytes(msg)
    assert conn.recv_bytes_into(memoryview(bytearray(len(msg))).cast("B")) == len(msg)
    conn.send_bytes(longmsg)
    with pytest.raises(BufferTooShort) as e:
        conn.recv_bytes_into(bytearray(len(longmsg) - 1))
    assert e.value.args == (longmsg,)

    assert conn.poll(0.0) is False
    conn.send(None)
    assert conn.poll(10) is True
    assert conn.recv() is None

    really_big = b"X" * 3000
    conn.send_bytes(really_big)
    assert conn.recv_bytes() == really_big

    conn.send_bytes(b"")
    assert conn.recv_bytes() == b""

    conn.send(None)
    assert conn.recv() is None
    conn.send_bytes(w.STOP)
    conn.close()
    join_all([p])
    assert p.exitcode == 0
    with pytest.raises(OSError):
        conn.recv()


def test_duplex_false(ctx):
    """_TestConnection.test_duplex_false: a one-way pipe's reader cannot send and its writer
    cannot receive."""
    reader, writer = shmq.Pipe(duplex=False)
    assert reader.readable and not reader.writable
    assert writer.writable and not writer.readable
    writer.send(1)
    assert reader.recv() == 1
    with pytest.raises(OSError):
        reader.send(2)
    with pytest.raises(OSError):
        writer.recv()
    with pytest.raises(OSError):
        writer.poll()
    p = ctx.Process(target=w.send_and_exit, args=(writer, ["from child"]))
    p.start()
    writer.close()
    assert reader.recv() == "from child"
    join_all([p])
    with pytest.raises(EOFError):
        reader.recv()


def test_spawn_close(ctx):
    """_TestConnection.test_spawn_close: the parent closes its copy of the child's end right
    after start; the child still talks, and its exit is EOF for the parent."""
    conn, child_conn = shmq.Pipe()
    p = ctx.Process(target=w.echo_conn, args=(child_conn,))
    p.daemon = True
    p.start()
    child_conn.close()  # this might complete before the child opens its end
    msg = b"hello"
    conn.send_bytes(msg)
    assert conn.recv_bytes() == msg
    conn.send_bytes(b"")
    conn.send_bytes(msg)
    assert conn.recv_bytes() == b""
    assert conn.recv_bytes() == msg
    conn.send_bytes(w.STOP)
    conn.close()
    join_all([p])


def test_sendbytes():
    """_TestConnection.test_sendbytes: offsets and sizes, and ValueError for bad ones."""
    a, b = shmq.Pipe()
    msg = b"abcdefghijklmnopqrstuvwxyz"
    a.send_bytes(msg)
    assert b.recv_bytes() == msg
    a.send_bytes(msg, 5)
    assert b.recv_bytes() == msg[5:]
    a.send_bytes(msg, 7, 8)
    assert b.recv_bytes() == msg[7:15]
    a.send_bytes(msg, 26)
    assert b.recv_bytes() == b""
    a.send_bytes(msg, 26, 0)
    assert b.recv_bytes() == b""
    for bad in [(27,), (10, -1), (10, 17), (-1,)]:
        with pytest.raises(ValueError):
            a.send_bytes(msg, *bad)
    with pytest.raises(ValueError):
        a.send_bytes(msg, 4, -1)
    assert b.poll() is False


def test_context_manager():
    """_TestConnection.test_context: `with` closes both ends."""
    a, b = shmq.Pipe()
    with a, b:
        a.send(1729)
        assert b.recv() == 1729
    assert a.closed and b.closed
    with pytest.raises(OSError):
        a.recv()


def test_each_call_on_a_closed_or_one_way_end_raises_oserror():
    """send, recv, send_bytes and recv_bytes (the whole-bytes fast paths included) raise
    OSError, with the reason, on the wrong end of a one-way pipe and on a closed handle; a
    send on a read-only end raises it before pickling the object."""
    reader, writer = shmq.Pipe(duplex=False)
    for call in (lambda: reader.send_bytes(b"x"), lambda: reader.send(1),
                 lambda: reader.send(lambda: 0)):  # (a lambda does not pickle)
        with pytest.raises(OSError, match="read-only"):
            call()
    for call in (writer.recv_bytes, writer.recv):
        with pytest.raises(OSError, match="write-only"):
            call()
    a, b = shmq.Pipe()
    a.close()
    for call in (lambda: a.send_bytes(b"x"), lambda: a.send(1), a.recv_bytes, a.recv,
                 lambda: a.send_bytes(bytearray(b"x"), 0, 1), lambda: a.recv_bytes(10)):
        with pytest.raises(OSError, match="closed"):
            call()
    b.close()
    reader.close()
    writer.close()


def test_recv_bytes_maxlength():
    """recv_bytes(maxlength) refuses a longer message with OSError."""
    a, b = shmq.Pipe()
    a.send_bytes(b"x" * 10)
    with pytest.raises(OSError):
        b.recv_bytes(5)


def test_poll_empty_string():
    """_TestPoll.test_empty_string: an empty message is ready like any other."""
    a, b = shmq.Pipe()
    assert a.poll() is False
    b.send_bytes(b"")
    assert a.poll() is True
    assert a.poll() is True
    assert a.recv_bytes() == b""
    assert a.poll() is False


def _send_strings(conn, strings):
    for s in strings:
        for _ in range(200):
            if conn.poll(0.01):
                break
        conn.send_bytes(s)
    conn.close()


def test_poll_strings(ctx):
    """_TestPoll.test_strings: messages of many sizes, each received whole."""
    strings = [b"hello", b"", b"a", b"b", b"", b"bye", b"", b"lop"]
    a, b = shmq.Pipe()
    p = ctx.Process(target=w.send_and_exit, args=(b, [bytes(s) for s in strings]))
    p.start()
    b.close()
    for s in strings:
        assert a.poll(30) is True
        assert a.recv() == s
    join_all([p])


def test_poll_boundaries(ctx):
    """_TestPoll.test_boundaries: a child's poll does not pull part of a message in; the
    parent then reads a whole one."""
    r, w_ = shmq.Pipe(False)
    p = ctx.Process(target=w.poll_once, args=(r, 5))
    p.start()
    time.sleep(0.5)
    msgs = [b"first", b"second"]
    for m in msgs:
        w_.send_bytes(m)
    w_.close()
    join_all([p])
    assert r.recv_bytes() in msgs


def test_poll_dont_merge(ctx):
    """_TestPoll.test_dont_merge: messages sent back to back stay apart, and poll says so
    before each."""
    a, b = shmq.Pipe()
    assert a.poll(0.0) is False
    assert a.poll(0.1) is False
    p = ctx.Process(target=w.send_and_exit, args=(b, [b"a", b"b", b"cd"]))
    p.start()
    b.close()
    assert a.recv() == b"a"
    assert a.poll(1.0) is True and a.poll(1.0) is True
    assert a.recv() == b"b"
    assert a.poll(1.0) is True and a.poll(1.0) is True and a.poll(0.0) is True
    assert a.recv() == b"cd"
    join_all([p])


def test_pickling_connections_access(ctx):
    """_TestPicklingConnections.test_access: connections sent over a connection to a child
    work there, both a writer and a reader, though the parent closes its copy at once."""
    conn, child_conn = shmq.Pipe()
    p = ctx.Process(target=w.child_access, args=(child_conn,))
    p.daemon = True
    p.start()
    child_conn.close()

    r, w_ = shmq.Pipe(duplex=False)
    conn.send(w_)
    w_.close()
    assert r.recv() == "all is well"
    r.close()

    r, w_ = shmq.Pipe(duplex=False)
    conn.send(r)
    r.close()
    w_.send("foobar")
    w_.close()
    assert conn.recv() == "foobar" * 2
    join_all([p])


def test_poll_eintr():
    """_TestPollEintr.test_poll_eintr: a signal whose handler returns does not end a poll
    early (the handler runs, the wait goes on)."""
    got = []
    old = signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
    try:
        a, b = shmq.Pipe()
        import threading

        def later():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.2)
            b.send("late")

        t = threading.Thread(target=later)
        t.start()
        assert a.poll(30) is True
        t.join()
        assert got == [1]
        assert a.recv() == "late"
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_eof_when_child_killed(ctx):
    """A child killed with SIGKILL is EOF for the parent (once drained), without timeouts."""
    parent, child = shmq.Pipe()
    p = ctx.Process(target=w.send_then_sleep, args=(child, 3600))
    p.start()
    child.close()
    assert parent.recv() == "ready"
    p.kill()
    join_all([p])
    with pytest.raises(EOFError):
        parent.recv()


def test_handoff_to_several_children(ctx):
    """The writer end goes to three children and is closed in the parent; the reader sees
    every message and then EOF when the last child exits."""
    reader, writer = shmq.Pipe(duplex=False)
    procs = [ctx.Process(target=w.send_and_exit, args=(writer, [i, i + 10])) for i in range(3)]
    for p in procs:
        p.start()
    writer.close()
    got = []
    with pytest.raises(EOFError):
        while True:
            got.append(reader.recv())
    join_all(procs)
    assert sorted(got) == [0, 1, 2, 10, 11, 12]


def test_handoff_reader_to_child(ctx):
    """The reader end goes to a child; the parent's writer close is the child's EOF."""
    reader, writer = shmq.Pipe(duplex=False)
    report = shmq.Queue()
    p = ctx.Process(target=w.recv_all_then_report, args=(reader, report, writer if ctx.get_start_method() == "fork" else None))
    p.start()
    reader.close()
    for i in range(50):
        writer.send(i)
    writer.close()
    assert report.get(timeout=60) == list(range(50))
    join_all([p])


def test_send_after_peer_gone_is_broken_pipe():
    """Sending once every holder of the other end is gone raises BrokenPipeError."""
    a, b = shmq.Pipe()
    b.close()
    with pytest.raises(BrokenPipeError):
        a.send("x")
    with pytest.raises(EOFError):
        a.recv()
    assert a.poll() is True  # EOF is ready, as in multiprocessing
