# Python's classic producer/consumer program, on shmq: the only change is the import.
from multiprocessing import Process
from shmq import Queue  # was: from multiprocessing import Queue


def producer(q, n):
    for i in range(n):
        q.put(("item", i))
    q.put(None)  # one sentinel per consumer, as the classic program does


def consumer(q, results):
    while (item := q.get()) is not None:
        results.put(item[1] * 2)


if __name__ == "__main__":
    q, results = Queue(5), Queue()
    procs = [Process(target=producer, args=(q, 10)) for _ in range(3)]
    procs += [Process(target=consumer, args=(q, results)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    got = sorted(results.get() for _ in range(30))
    assert got == sorted(2 * i for i in range(10) for _ in range(3))
    print("30 items through shmq.Queue:", got[:5], "...")
