"""SharedDict: the semantics of CPython's _TestContainers.test_dict / test_dict_iter for the
Manager dict, ported to shmq's str -> int model, with real processes."""

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
