"""SharedDict: the semantics of CPython's _TestContainers.test_dict / test_dict_iter for the
Manager dict, ported to shmq's str -> int model, with real processes."""

import time

import pytest

import shmq
from conftest import join_all
import _workers as w


def _fill(d):
    for i in range(65, 70):
        d[chr(i)] = i


def test_dict(ctx):
    """_TestContainers.test_dict: items written in a child are seen by the parent; copy,
    keys, values and items agree (keys are str and values int in this model)."""
    d = shmq.SharedDict()
    p = ctx.Process(target=_fill_in_child, args=(d,))
    p.start()
    join_all([p])
    assert p.exitcode == 0
    indices = list(range(65, 70))
    expected = {chr(i): i for i in indices}
    assert d.copy() == expected
    assert sorted(d.keys()) == [chr(i) for i in indices]
    assert sorted(d.values()) == indices
    assert sorted(d.items()) == [(chr(i), i) for i in indices]
    assert d == expected


def _fill_in_child(d):
    _fill(d)


def test_dict_iter():
    """_TestContainers.test_dict_iter: iterating yields every key once."""
    d = shmq.SharedDict()
    for i in range(10):
        d[str(i)] = i
    assert sorted(d, key=int) == [str(i) for i in range(10)]
    assert len(d) == 10


def test_dict_manager_interface():
    """[] / get / setdefault / pop / update / len / in / del / clear behave as a dict's."""
    d = shmq.SharedDict({"a": 1}, b=2)
    assert d["a"] == 1 and d.get("b") == 2 and d.get("zz") is None and d.get("zz", 7) == 7
    with pytest.raises(KeyError):
        d["missing"]
    assert d.setdefault("a", 5) == 1
    assert d.setdefault("c", 3) == 3 and d["c"] == 3
    assert d.pop("c") == 3 and "c" not in d
    assert d.pop("c", None) is None
    with pytest.raises(KeyError):
        d.pop("c")
    d.update({"x": 10}, y=11)
    d.update([("z", 12)])
    assert len(d) == 5 and "x" in d and 1 not in d
    del d["x"]
    with pytest.raises(KeyError):
        del d["x"]
    assert d.add("y", 5) == 16 and d.add("new") == 1
    d.clear()
    assert len(d) == 0 and d.copy() == {}


def test_dict_values_are_int_keys_are_str():
    """The documented answer for other values: TypeError (and OverflowError past int64)."""
    d = shmq.SharedDict()
    with pytest.raises(TypeError):
        d["a"] = "text"
    with pytest.raises(TypeError):
        d["a"] = 1.5
    with pytest.raises(TypeError):
        d[1] = 1
    with pytest.raises(OverflowError):
        d["a"] = 2**63
    with pytest.raises(ValueError):
        d["k" * 100] = 1  # longer than max_key_len
    assert len(d) == 0


def test_dict_full_update_changes_nothing():
    """An update that does not fit raises and writes nothing."""
    d = shmq.SharedDict(capacity=2)
    d["a"] = 1
    with pytest.raises(ValueError):
        d.update({"b": 2, "c": 3})
    assert d.copy() == {"a": 1}


def test_dict_takes_bools_as_ints():
    """A bool is an int in Python: True and False are stored as 1 and 0 and read back as ints."""
    d = shmq.SharedDict()
    d["yes"] = True
    d["no"] = False
    assert d["yes"] == 1 and type(d["yes"]) is int
    assert d["no"] == 0 and type(d["no"]) is int
    assert d.add("yes", True) == 2
    d.update({"u": True})
    assert d.setdefault("s", True) == 1
    assert d.copy() == {"yes": 2, "no": 0, "u": 1, "s": 1}


def test_full_dict_says_how_to_make_a_larger_one():
    """A new key in a full dict raises ValueError naming the capacity to create instead."""
    d = shmq.SharedDict(capacity=2)
    d["a"] = 1
    d["b"] = 2
    with pytest.raises(ValueError) as e:
        d["c"] = 3
    assert "the dict is full: all 2 entries hold a key" in str(e.value)
    assert "SharedDict(capacity=4)" in str(e.value)
    with pytest.raises(ValueError, match=r"SharedDict\(capacity=4\)"):
        d.update({"c": 3})


# -- dict behaviour: order, views, popitem, size changes during iteration, MutableMapping --


def _insert_keys(d, keys):
    for k in keys:
        d[k] = len(k)


def test_iteration_is_insertion_order():
    """Keys, values and items come in insertion order, as a dict's: an update keeps a key's
    place, a key removed and inserted again goes last; reversed() walks it backwards."""
    d = shmq.SharedDict()
    plain = {}
    for k, v in [("m", 1), ("b", 2), ("zz", 3), ("a", 4), ("q", 5)]:
        d[k] = v
        plain[k] = v
    for target in (d, plain):
        target["b"] = 20
        del target["m"]
        target["m"] = 10
    assert list(d) == list(plain) == ["b", "zz", "a", "q", "m"]
    assert list(d.keys()) == list(plain.keys())
    assert list(d.values()) == list(plain.values())
    assert list(d.items()) == list(plain.items())
    assert list(reversed(d)) == list(reversed(plain))
    assert list(d.copy()) == list(plain)


def test_order_is_shared_by_every_process(ctx):
    """Keys inserted by a child come after the parent's, in the child's order."""
    d = shmq.SharedDict()
    d["first"] = 0
    keys = ["k9", "k1", "k5", "k3"]
    p = ctx.Process(target=_insert_keys, args=(d, keys))
    p.start()
    join_all([p])
    assert p.exitcode == 0
    assert list(d) == ["first"] + keys


def test_popitem_takes_the_last_inserted_and_raises_when_empty(ctx):
    """popitem() returns the most recently inserted pair (another process's insert
    included) and raises KeyError on an empty dict."""
    d = shmq.SharedDict()
    d["a"] = 1
    d["b"] = 2
    p = ctx.Process(target=_insert_keys, args=(d, ["from-child"]))
    p.start()
    join_all([p])
    assert d.popitem() == ("from-child", 10)
    d["b"] = 3  # an update does not move it
    assert d.popitem() == ("b", 3)
    assert d.popitem() == ("a", 1)
    with pytest.raises(KeyError):
        d.popitem()


def test_size_change_in_another_process_during_iteration_raises(ctx):
    """A dict iterator raises RuntimeError("dictionary changed size during iteration") once
    any process has changed the size, and keeps raising; an exhausted one stays exhausted."""
    d = shmq.SharedDict()
    _fill(d)
    it = iter(d)
    assert next(it) == "A"
    p = ctx.Process(target=_insert_keys, args=(d, ["new"]))
    p.start()
    join_all([p])
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        next(it)
    with pytest.raises(RuntimeError):
        next(it)
    it = iter(d.items())
    assert list(it) == [(chr(i), i) for i in range(65, 70)] + [("new", 3)]
    d["other"] = 1
    assert list(it) == []
    it = iter(d.values())
    del d["other"]
    with pytest.raises(RuntimeError):
        next(it)


def test_shared_dict_is_a_mutable_mapping():
    """isinstance(d, MutableMapping) holds and the protocol works: == and != with a dict in
    both directions, views with len/in/set operations, |, |=, the mixins."""
    from collections.abc import Mapping, MutableMapping

    d = shmq.SharedDict(a=1, b=2)
    assert isinstance(d, MutableMapping) and isinstance(d, Mapping)
    assert d == {"a": 1, "b": 2} and {"b": 2, "a": 1} == d
    assert d != {"a": 1} and not (d == {"a": 1, "b": 3})
    assert d != [("a", 1), ("b", 2)]
    other = shmq.SharedDict(b=2, a=1)
    assert d == other
    assert len(d.keys()) == 2 and "a" in d.keys() and "zz" not in d.keys()
    assert d.keys() & {"a", "x"} == {"a"} and d.keys() == {"a", "b"}
    assert ("a", 1) in d.items() and ("a", 2) not in d.items() and 2 in d.values()
    assert d | {"c": 3} == {"a": 1, "b": 2, "c": 3}
    assert {"z": 0} | d == {"z": 0, "a": 1, "b": 2}
    d |= {"c": 3}
    assert d["c"] == 3
    assert MutableMapping.pop(d, "c") == 3
    assert dict(d) == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        hash(d)
    with pytest.raises(KeyError):
        d[1]


def _churn(d, wid, ready):
    """Inserts, updates, pops and deletes without end; every value written for key
    ``w{wid}-{j}`` is ``1000 * j + wid``, so a torn entry would show."""
    ready.put(wid)
    i = 0
    while True:
        j = i % 40
        key = f"w{wid}-{j}"
        op = i % 7
        if op < 3:
            d[key] = 1000 * j + wid
        elif op == 3:
            d.pop(key, None)
        elif op == 4:
            try:
                d.popitem()
            except KeyError:
                pass
        elif op == 5:
            d.update({f"w{wid}-{(j + k) % 40}": 1000 * ((j + k) % 40) + wid for k in range(3)})
        else:
            d.add("ops", 1)
        i += 1


def _check_consistent(d):
    items = d.copy()
    assert len(d) == len(items) == len(list(d)) == len(d.items())
    assert list(d) == list(items)
    for k, v in items.items():
        if k == "ops":
            continue
        wid, j = k[1:].split("-")
        assert v == 1000 * int(j) + int(wid), (k, v)
    order = list(d)
    popped = []
    while True:
        try:
            popped.append(d.popitem()[0])
        except KeyError:
            break
    assert popped == order[::-1]
    d["after"] = 1
    d["later"] = 2
    assert list(d) == ["after", "later"]


def test_processes_killed_mid_update_leave_the_dict_consistent():
    """Workers churn the dict while the parent SIGKILLs them at random instants (some inside
    the dict's lock); afterwards len agrees with the entries, every value is one that was
    written whole, the order is one order (popitem drains it backwards) and the dict works."""
    import multiprocessing as mp
    import random

    ctx = mp.get_context("fork")
    d = shmq.SharedDict(capacity=256, max_key_len=16)
    ready = shmq.Queue()
    rng = random.Random(25)
    procs = {}
    for wid in range(3):
        procs[wid] = ctx.Process(target=_churn, args=(d, wid, ready))
        procs[wid].start()
    for _ in range(3):
        ready.get(timeout=60)
    kills = 0
    for _ in range(15):
        time.sleep(rng.uniform(0.005, 0.08))
        wid = rng.randrange(3)
        procs[wid].kill()
        procs[wid].join(30)
        kills += 1
        procs[wid] = ctx.Process(target=_churn, args=(d, wid, ready))
        procs[wid].start()
        ready.get(timeout=60)
    time.sleep(0.05)
    for p in procs.values():
        p.kill()
    join_all(list(procs.values()))
    assert kills == 15 and d["ops"] > 0
    _check_consistent(d)
