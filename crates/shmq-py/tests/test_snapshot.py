"""shmq.snapshot(): every segment seen without locks, as `shmq top --once --json` sees it."""

import os

import shmq


def test_snapshot_reports_depth_puts_closed_and_the_producer():
    name = f"shmq-py-snap-{os.getpid()}"
    q = shmq.JoinableQueue(4, name=name)
    try:
        q.put("a")
        q.put("b")
        q.get()
        rows = shmq.snapshot(name)
        assert [r["name"] for r in rows] == [name]
        row = rows[0]
        assert (row["kind"], row["state"]) == ("queue", "open")
        ring = row["rings"][0]
        assert (ring["len"], ring["capacity"]) == (1, 4)
        assert (ring["puts_total"], ring["gets_total"], ring["unfinished"]) == (2, 1, 2)
        assert not ring["consumers_waiting"] and not ring["producers_waiting"]
        roles = {(p["pid"], p["role"], p["alive"]) for p in row["processes"]}
        assert (os.getpid(), "producer", True) in roles
        assert row["size"] > 0 and row["lock"] == "free"
    finally:
        shmq.unlink(name)
    assert shmq.snapshot(name) == []


def test_snapshot_sees_a_closed_queue_and_a_dict():
    qname, dname = f"shmq-py-snapc-{os.getpid()}", f"shmq-py-snapd-{os.getpid()}"
    q = shmq.Queue(2, name=qname)
    d = shmq.SharedDict(name=dname)
    try:
        d["x"] = 1
        q.put(1)
        q.shutdown()
        rows = {r["name"]: r for r in shmq.snapshot("shmq-py-snap")}
        assert rows[qname]["state"] == "closed"
        assert rows[qname]["rings"][0]["closed"] is True
        assert (rows[dname]["kind"], rows[dname]["keys"]) == ("dict", 1)
    finally:
        shmq.unlink(qname)
        shmq.unlink(dname)
