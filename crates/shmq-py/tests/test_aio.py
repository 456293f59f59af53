"""asyncio: the coro_* methods of Queue, JoinableQueue, SimpleQueue and Connection, with real
processes under each start method, on the default event loop and on uvloop (when installed):
round trips, the loop kept free while they wait, cancellation that loses or doubles nothing,
and several tasks waiting on one object."""

import asyncio
import random

import pytest

import shmq
from conftest import join_all
import _wait_workers as ww

try:
    import uvloop  # noqa: F401

    HAVE_UVLOOP = True
except ImportError:
    HAVE_UVLOOP = False


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request):
    """The event loop to run on: asyncio's default one, and uvloop if it is installed."""
    if request.param == "uvloop" and not HAVE_UVLOOP:
        pytest.skip("uvloop is not installed (pip install uvloop)")
    return request.param


async def within(coro, seconds):
    """Runs `coro` as a task for up to `seconds`, then cancels it: returns (True, result) if
    it completed (also if it completed while being cancelled), (False, None) if the
    cancellation took. Unlike asyncio.wait_for on Python < 3.12, never reports a completed
    operation as timed out."""
    task = asyncio.ensure_future(coro)
    await asyncio.wait({task}, timeout=seconds)
    if not task.done():
        task.cancel()
        # asyncio.wait does not raise the task's CancelledError (a cancellation of this
        # coroutine itself still propagates: the test's own timeout works).
        await asyncio.wait({task})
    if task.cancelled():
        return False, None
    return True, task.result()


def run(kind, coro, timeout=60):
    """Runs `coro` on a new loop of `kind`, failing (not hanging) after `timeout` s, before
    the watchdog would."""
    return ww.run_async(kind, asyncio.wait_for(coro, timeout))


class Ticker:
    """A task that counts loop iterations every millisecond: a loop blocked by a coroutine
    would count (almost) none."""

    def __init__(self):
        self.ticks = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        while True:
            await asyncio.sleep(0.001)
            self.ticks += 1

    def stop(self):
        self.task.cancel()
        return self.ticks


def test_coro_queue_round_trip(ctx, loop_kind):
    """coro_put/coro_get through an echo child that runs its own loop: 300 objects through
    queues of 4 slots (so puts wait for room), in order, with the loop free meanwhile."""
    n = 300
    q_in, q_out = shmq.Queue(4), shmq.Queue(4)
    p = ctx.Process(target=ww.async_queue_echo, args=(loop_kind, q_in, q_out, n))
    p.start()

    async def main():
        ticker = Ticker()

        async def produce():
            for i in range(n):
                await q_in.coro_put(("item", i, b"x" * (i % 50)))

        async def consume():
            return [await q_out.coro_get() for _ in range(n)]

        _, got = await asyncio.gather(produce(), consume())
        return got, ticker.stop()

    try:
        got, _ = run(loop_kind, main())
        assert got == [("item", i, b"x" * (i % 50)) for i in range(n)]
        join_all([p])
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        q_in.close()
        q_out.close()


def test_coro_pipe_round_trip_and_eof(ctx, loop_kind):
    """coro_send/coro_recv through an async echo child, then EOFError from coro_recv once
    the child has closed its end and exited, and BrokenPipeError from coro_send."""
    n = 200
    a, b = shmq.Pipe()
    p = ctx.Process(target=ww.async_pipe_echo, args=(loop_kind, b, n))
    p.start()
    b.close()

    async def main():
        got = []
        for i in range(n):
            await a.coro_send({"i": i})
            got.append(await a.coro_recv())
        with pytest.raises(EOFError):
            await a.coro_recv()
        with pytest.raises(BrokenPipeError):
            await a.coro_send("late")
        return got

    try:
        assert run(loop_kind, main()) == [{"i": i} for i in range(n)]
        join_all([p])
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        a.close()


def test_coroutine_fds_are_armed_only_while_a_coroutine_waits(ctx, loop_kind, monkeypatch):
    """Ping-pong of 200 round trips with a blocking echo child, through a pipe and through
    two queues, the coroutines polling up to 10 ms before they wait on the loop: a coroutine's
    fd arms a readiness future with the notifier only for the waits that went through the
    loop, not once per message (as an fd kept armed after each take would, making every
    message wake the notifier thread)."""
    import shmq._aio as aio

    monkeypatch.setattr(aio, "SPIN", 0.01)
    loop_waits = []
    wait_readable = aio.wait_readable

    async def counted(fd):
        loop_waits.append(fd.fd)
        await wait_readable(fd)

    monkeypatch.setattr(aio, "wait_readable", counted)
    n = 200
    a, b = shmq.Pipe()
    q_in, q_out = shmq.Queue(), shmq.Queue()
    procs = [ctx.Process(target=ww.pipe_echo, args=(b, n)),
             ctx.Process(target=ww.queue_echo, args=(q_in, q_out, n))]
    for p in procs:
        p.start()
    b.close()

    async def main():
        for i in range(n):
            await a.coro_send(i)
            assert await a.coro_recv() == i
            q_in.put(i)
            assert await q_out.coro_get() == i

    try:
        run(loop_kind, main())
        join_all(procs)
        for fd in (a._coro_recvfd, q_out._coro_getfd):
            waits = loop_waits.count(fd.fd)
            assert fd.arms <= waits, (fd.arms, waits)
        assert len(loop_waits) < n // 2  # (mostly found within the poll)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        a.close()
        q_in.close()
        q_out.close()


def test_waiting_coroutine_leaves_the_loop_free(ctx, loop_kind):
    """A coro_get on an empty queue and a coro_recv on an empty pipe wait 0.5 s for a child
    while a ticker keeps running on the same loop."""
    q = shmq.SimpleQueue()
    r, w = shmq.Pipe(duplex=False)

    async def main():
        ticker = Ticker()
        p = ctx.Process(target=ww.put_slowly, args=(q, 1, 0.5))
        p.start()
        got = await q.coro_get()
        w.send("later")
        got2 = await r.coro_recv()
        ticks = ticker.stop()
        await asyncio.sleep(0)
        return p, got, got2, ticks

    p, got, got2, ticks = run(loop_kind, main())
    try:
        assert (got, got2) == (0, "later")
        assert ticks >= 50  # 0.5 s of 1 ms ticks; a blocked loop would count ~0
        join_all([p])
    finally:
        q.close()
        r.close()
        w.close()


def test_cancelled_get_loses_no_message(ctx, loop_kind):
    """coro_get cancelled after 0-2 ms (task.cancel), against a child that puts
    400 numbers with random pauses: many gets are cancelled, and every number still arrives
    exactly once, in order."""
    n = 400
    q = shmq.Queue(8)
    p = ctx.Process(target=ww.put_jittered, args=(q, n, 1))
    p.start()
    rnd = random.Random(2)

    async def main():
        got, cancelled = [], 0
        # Until all came, or the producer is done and nothing is left (a lost message).
        while len(got) < n and not (p.exitcode is not None and q.empty()):
            done, x = await within(q.coro_get(), rnd.random() * 0.002)
            if done:
                got.append(x)
            else:
                cancelled += 1
        return got, cancelled

    try:
        got, cancelled = run(loop_kind, main())
        assert got == list(range(n))
        assert cancelled > 10, "the test cancelled too few gets to mean anything"
        assert q.empty()
        join_all([p])
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        q.close()


def test_cancelled_put_is_all_or_nothing(ctx, loop_kind):
    """coro_put into a 2-slot queue cancelled after 0-2 ms (task.cancel), retrying a number
    only when its put was cancelled, against a child that gets with random pauses:
    the child receives each (number, payload) exactly once and whole."""
    n = 300
    q = shmq.Queue(2)
    report = shmq.Queue()
    p = ctx.Process(target=ww.get_jittered_then_report, args=(q, report, 3))
    p.start()
    rnd = random.Random(4)

    def item(i):
        return (i, bytes([i % 251]) * (i % 200))

    async def main():
        cancelled = 0
        for i in range(n):
            while True:
                done, _ = await within(q.coro_put(item(i)), rnd.random() * 0.002)
                if done:
                    break
                cancelled += 1
        await q.coro_put(None)
        return cancelled

    try:
        cancelled = run(loop_kind, main())
        assert report.get(timeout=60) == [item(i) for i in range(n)]
        assert cancelled > 10, "the test cancelled too few puts to mean anything"
        join_all([p])
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        q.close()
        report.close()


def test_coro_join(ctx, loop_kind):
    """JoinableQueue.coro_join returns once a child worker marked every item done, and not
    before; the loop runs meanwhile."""
    q = shmq.JoinableQueue()
    for i in range(10):
        q.put(i)
    q.put(None)
    p = ctx.Process(target=ww.work_slowly, args=(q, 0.02))

    async def main():
        ticker = Ticker()
        p.start()
        await q.coro_join()
        left = q.unfinished()
        return left, ticker.stop()

    try:
        left, ticks = run(loop_kind, main())
        assert left == 0
        assert ticks >= 50  # 11 items at 20 ms: about 0.2 s of ticks
        join_all([p])
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        q.close()


def test_coro_join_sleeps_until_the_last_task_done(ctx, loop_kind):
    """coro_join waits without polling: while a child holds the one task for 1 s, this
    process (its loop, the join's thread and its start) uses under 8 ms of CPU, where a check
    of the count every few ms used 14-19 ms (a waiting join measured 1-2.5 ms: the bound
    leaves room for a loaded machine and still fails a poll), and coro_join returns soon
    after the task_done."""
    import resource
    import time

    q, report = shmq.JoinableQueue(), shmq.Queue()
    q.put("task")
    p = ctx.Process(target=ww.hold_task_then_report, args=(q, 1.0, report))
    p.start()

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    async def main():
        while q.qsize():  # the child took the task
            await asyncio.sleep(0.01)
        c0 = cpu()
        await q.coro_join()
        return time.monotonic(), cpu() - c0

    try:
        returned, used = run(loop_kind, main())
        done_at = report.get(timeout=10)
        assert q.unfinished() == 0
        assert 0 <= returned - done_at < 0.5, returned - done_at
        assert used < 0.008, used
        join_all([p])
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        q.close()


def _join_threads():
    """The ids of this process's threads named as coro_join's (native threads: not in
    threading's list)."""
    import glob

    tids = set()
    for comm in glob.glob("/proc/self/task/*/comm"):
        try:
            with open(comm) as f:
                if f.read().strip() == "shmq-py-join":
                    tids.add(comm.split("/")[4])
        except OSError:
            pass  # the thread ended meanwhile
    return tids


def test_coro_join_cancelled_lets_its_thread_go(loop_kind):
    """A waiting coro_join has a thread sleeping in join; cancelled (asyncio.wait_for), it
    raises TimeoutError, its thread ends within a few seconds (it checks every 0.1 s), and a
    later coro_join completes once the task is done."""
    import time

    q = shmq.JoinableQueue()
    q.put("task")
    before = _join_threads()

    async def main():
        task = asyncio.ensure_future(q.coro_join())
        for _ in range(500):  # its thread shows (a loaded machine may take a while)
            await asyncio.sleep(0.01)
            if _join_threads() - before:
                break
        mine = _join_threads() - before
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.05)
        return mine

    mine = run(loop_kind, main())
    assert len(mine) == 1
    deadline = time.monotonic() + 5
    while _join_threads() & mine and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _join_threads() & mine
    q.get()
    q.task_done()
    run(loop_kind, q.coro_join(), timeout=10)
    q.close()


def test_coro_send_waits_for_room(ctx, loop_kind):
    """coro_send into a pipe of 2 slots whose reader is slow: 40 messages arrive in order,
    the sends waiting for room without blocking the loop."""
    n = 40
    r, w = shmq.Pipe(duplex=False, capacity=2)
    report = shmq.Queue()
    p = ctx.Process(target=ww.recv_slowly_then_report, args=(r, report, n, 0.005))
    p.start()

    async def main():
        ticker = Ticker()
        for i in range(n):
            await w.coro_send(i)
        return ticker.stop()

    try:
        ticks = run(loop_kind, main())
        assert report.get(timeout=60) == list(range(n))
        assert ticks >= 20
        join_all([p])
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        r.close()
        w.close()
        report.close()


def test_many_tasks_wait_on_one_queue(ctx, loop_kind):
    """Five tasks wait in coro_get on one queue (one fd); a child's five puts wake them all,
    each item going to exactly one task."""
    q = shmq.Queue()

    async def main():
        tasks = [asyncio.ensure_future(q.coro_get()) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in tasks)
        p = ctx.Process(target=ww.put_slowly, args=(q, 5, 0.01))
        p.start()
        got = await asyncio.gather(*tasks)
        return p, got

    p, got = run(loop_kind, main())
    try:
        assert sorted(got) == list(range(5))
        join_all([p])
    finally:
        q.close()


def test_close_wakes_a_waiting_coroutine(loop_kind):
    """Closing a connection or a queue while a task waits on it in coro_recv / coro_get makes
    that task raise (the handle is closed) instead of waiting for good."""
    a, b = shmq.Pipe()
    q = shmq.Queue()

    async def main():
        recv = asyncio.ensure_future(a.coro_recv())
        get = asyncio.ensure_future(q.coro_get())
        await asyncio.sleep(0.05)
        assert not recv.done() and not get.done()
        a.close()
        q.close()
        with pytest.raises(OSError):
            await asyncio.wait_for(recv, 5)
        with pytest.raises(ValueError):
            await asyncio.wait_for(get, 5)

    try:
        run(loop_kind, main())
    finally:
        b.close()
