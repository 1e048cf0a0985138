"""The same calls on pylibmc and on larder, against the same freshly flushed memcached:
the return values and the exception classes must match."""

import larder
import pytest
from helpers import outcome, raw_set

pylibmc = pytest.importorskip("pylibmc")


def run_both(server, calls, behaviors=None, binary=False):
    """Outcomes of each call of `calls` on pylibmc, then on larder, each from a flushed
    server and a fresh client."""
    results = []
    for module in (pylibmc, larder):
        server.flush()
        client = module.Client([server.spec], behaviors=behaviors, binary=binary)
        results.append([outcome(lambda: call(client)) for call in calls])
    return results


class BytesKey(bytes):
    pass


class StrKey(str):
    pass


def key_types(hits):
    """Each key of a `get_multi` result with the name of its exact type."""
    return sorted((bytes(k, "utf-8") if isinstance(k, str) else bytes(k), type(k).__name__)
                  for k in hits)


# Each case: a list of calls made in order on one client.
CASES = {
    "get miss": [lambda c: c.get("nokey")],
    "get default": [lambda c: c.get("nokey", 7), lambda c: c.get("", 3), lambda c: c.get("")],
    "set get": [lambda c: c.set("k", "v"), lambda c: c.get("k")],
    "set returns": [lambda c: c.set("k", 1, time=10), lambda c: c.set("k", 1, 0, 0, -1)],
    "set empty key": [lambda c: c.set("", 1), lambda c: c.add("", 1), lambda c: c.replace("", 1)],
    "add": [lambda c: c.add("k", 1), lambda c: c.add("k", 2), lambda c: c.get("k")],
    "replace": [lambda c: c.replace("k", 1), lambda c: c.set("k", 1), lambda c: c.replace("k", 2),
                lambda c: c.get("k")],
    "append prepend": [
        lambda c: c.append("k", b"x"),
        lambda c: c.prepend("k", b"x"),
        lambda c: c.set("k", b"mid"),
        lambda c: c.append("k", b">"),
        lambda c: c.prepend("k", b"<"),
        lambda c: c.get("k"),
        lambda c: c.set("s", "a"),
        lambda c: c.append("s", "b"),
        lambda c: c.get("s"),
        lambda c: c.set("n", 1),
        lambda c: c.append("n", 2),
        lambda c: c.get("n"),
    ],
    "delete": [lambda c: c.delete("k"), lambda c: c.set("k", 1), lambda c: c.delete("k"),
               lambda c: c.delete("k"), lambda c: c.delete("")],
    "incr decr": [
        lambda c: c.incr("n"),
        lambda c: c.decr("n"),
        lambda c: c.set("n", 10),
        lambda c: c.incr("n"),
        lambda c: c.incr("n", 5),
        lambda c: c.decr("n", 100),
        lambda c: c.get("n"),
        lambda c: c.incr("n", -1),
        lambda c: c.set("s", "abc"),
        lambda c: c.incr("s"),
        lambda c: c.set("b", b"41"),
        lambda c: c.incr("b"),
        lambda c: c.get("b"),
        lambda c: c.incr(""),
        lambda c: c.set("w", 2**64 - 1),
        lambda c: c.incr("w"),
    ],
    "touch": [lambda c: c.touch("k", 10), lambda c: c.set("k", 1), lambda c: c.touch("k", 10),
              lambda c: c.touch("", 1)],
    "get_multi": [
        lambda c: c.get_multi([]),
        lambda c: c.set("a", 1),
        lambda c: c.set("b", b"2"),
        lambda c: c.get_multi(["a", b"b", "nokey"]),
        lambda c: c.get_multi(("a",)),
        lambda c: c.get_multi({"a"}),
        lambda c: c.get_multi(["a", "a"]),
        lambda c: c.get_multi([b"a", "a"]),
        lambda c: c.get_multi(["", "a"]),
        lambda c: c.get_multi("ab"),
        lambda c: c.get_multi(iter(["a"])),
        lambda c: c.get_multi([1]),
        lambda c: c.get_multi(["a" * 251]),
    ],
    # pylibmc reads every key (TypeError, ValueError) before it judges any (BadKeyProvided).
    "get_multi first bad key": [
        lambda c: c.set("a", 1),
        lambda c: c.get_multi(["a", "a b", 1]),
        lambda c: c.get_multi(["a", 1, "a b"]),
        lambda c: c.get_multi(["a b", "x" * 251]),
        lambda c: c.get_multi(["x" * 251, "a b"]),
        lambda c: c.get_multi(["a b", "b" * 240], key_prefix="p" * 20),
        lambda c: c.get_multi(["b" * 240, "a b"], key_prefix="p" * 20),
        lambda c: c.get_multi(["x" * 251, 1]),
        lambda c: c.get_multi([1, "x" * 251]),
    ],
    "get_multi key types": [
        lambda c: c.set_multi({"a": 1, "b": 2, "p_a": 3}),
        lambda c: key_types(c.get_multi([BytesKey(b"a"), StrKey("b")])),
        lambda c: key_types(c.get_multi([BytesKey(b"a"), b"b"], key_prefix="p_")),
        lambda c: key_types(c.get_multi([StrKey("a")], key_prefix=b"p_")),
    ],
    "key_prefix": [
        lambda c: c.set_multi({"a": 1, b"b": 2}, key_prefix="p_"),
        lambda c: c.get("p_a"),
        lambda c: c.get_multi(["a", b"b", "c"], key_prefix="p_"),
        lambda c: c.get_multi(["a", b"b"], key_prefix=b"p_"),
        lambda c: c.get_multi(["", "p_a"], key_prefix=""),
        lambda c: c.get_multi(["_a"], key_prefix="p"),
        lambda c: c.add_multi({"a": 1, b"b": 2, "c": 3}, key_prefix="p_"),
        lambda c: c.get("p_c"),
        lambda c: c.delete_multi(["a", b"b", "c"], key_prefix="p_"),
        lambda c: c.delete_multi(["a"], key_prefix="p_"),
        lambda c: c.get_multi(["a" * 200], key_prefix="b" * 60),
        lambda c: c.set_multi({"a" * 200: 1}, key_prefix="b" * 60),
        lambda c: c.delete_multi(["a" * 200], key_prefix="b" * 60),
        lambda c: c.incr_multi(["a" * 200], key_prefix="b" * 60),
    ],
    "set_multi": [
        lambda c: c.set_multi({}),
        lambda c: c.set_multi({"a": 1, "b": "two", "c": [3]}),
        lambda c: c.get_multi(["a", "b", "c"]),
        lambda c: c.set_multi({"a": 1}, 10),
        lambda c: c.set_multi({"": 1, "x": 2}),
        lambda c: c.set_multi([("a", 1)]),
        lambda c: c.set_multi({1: 1}),
        lambda c: c.set_multi({"k" * 251: 1}),
    ],
    "add_multi": [
        lambda c: c.add_multi({"a": 1}),
        lambda c: c.add_multi({"a": 2, b"b": 3, "c": 4}),
        lambda c: c.get_multi(["a", b"b", "c"]),
    ],
    "delete_multi": [
        lambda c: c.delete_multi([]),
        lambda c: c.set_multi({"a": 1, "b": 2}),
        lambda c: c.delete_multi(["a", "b"]),
        lambda c: c.delete_multi(["a", "nokey"]),
        lambda c: c.delete_multi({"a": 1}),
        lambda c: c.delete_multi(iter(["x"])),
        lambda c: c.delete_multi([""]),
    ],
    "incr_multi": [
        lambda c: c.set_multi({"x": 1, "y": 2}),
        lambda c: c.incr_multi(["x", "y"]),
        lambda c: c.incr_multi(["x", "y"], delta=3),
        lambda c: c.get_multi(["x", "y"]),
        lambda c: c.incr_multi(["x", "nope", "nope2"]),
        lambda c: c.get("x"),
        lambda c: c.incr_multi(["x"], key_prefix=""),
        lambda c: c.set("s", "abc"),
        lambda c: c.incr_multi(["x", "s"]),
        lambda c: c.incr_multi(["x", ""]),
        lambda c: c.incr_multi(iter(["x"])),
        lambda c: c.get("x"),
    ],
    "flush_all": [lambda c: c.set("a", 1), lambda c: c.flush_all(), lambda c: c.get("a"),
                  lambda c: c.flush_all(0), lambda c: c.flush_all(-5), lambda c: c.flush_all(1.5)],
    "bad keys": [
        lambda c: c.get(1),
        lambda c: c.get(None),
        lambda c: c.set(1, 1),
        lambda c: c.set(b"k", 1),
        lambda c: c.get("k"),
        lambda c: c.delete(1.5),
        lambda c: c.incr(["k"]),
        lambda c: c.touch(object(), 1),
        lambda c: c.set("a" * 251, 1),
        lambda c: c.set("a" * 250, 1),
        lambda c: c.get("a" * 250),
        lambda c: c.get("a" * 251),
        lambda c: c.delete("a" * 251),
        lambda c: c.incr("a" * 251),
        lambda c: c.touch("a" * 251, 1),
        lambda c: c.get("\ud800"),
    ],
    "bad arguments": [
        lambda c: c.set("k", 1, time=1.5),
        lambda c: c.touch("k"),
        lambda c: c.get(),
        lambda c: c.set("k"),
        lambda c: c.get_multi(None),
        lambda c: c.get_stats(5),
    ],
    "too big": [
        lambda c: c.set("big", b"x" * (1 << 20)),
        lambda c: c.set("ok", b"x" * ((1 << 20) - 100)),
        lambda c: c.get("big"),
        lambda c: c.set_multi({"big": b"x" * ((1 << 20) + 10)}),
        lambda c: c.add("big", b"x" * (2 << 20)),
    ],
    "non-utf8 keys": [
        lambda c: c.set(b"\xff\xfe", 1),
        lambda c: c.get(b"\xff\xfe"),
        lambda c: c.set("é", "é"),
        lambda c: c.get(b"\xc3\xa9"),
        lambda c: c.get_multi([b"\xc3\xa9", b"\xff\xfe"]),
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_same_outcomes(server, name):
    pylibmc_results, larder_results = run_both(server, CASES[name])
    assert larder_results == pylibmc_results


CAS_CASES = {
    "gets": [
        lambda c: c.gets("k"),
        lambda c: c.gets(""),
        lambda c: c.set("k", "v"),
        lambda c: c.gets("k")[0],
        lambda c: type(c.gets("k")[1]),
    ],
    "cas": [
        lambda c: c.cas("nokey", 1, 5),
        lambda c: c.set("k", 1),
        lambda c: c.cas("k", 2, 12345),
        lambda c: c.cas("k", 3, c.gets("k")[1]),
        lambda c: c.get("k"),
        lambda c: c.cas("k", 4, c.gets("k")[1], 10),
        lambda c: c.get("k"),
    ],
}


@pytest.mark.parametrize("name", CAS_CASES)
def test_same_outcomes_with_cas(server, name):
    pylibmc_results, larder_results = run_both(server, CAS_CASES[name], {"cas": True})
    assert larder_results == pylibmc_results


def test_cas_refuses_a_negative_cas(server):
    # pylibmc sends -1 as 2**64-1 and fails oddly (AllocationError); larder refuses it.
    mc = larder.Client([server.spec], behaviors={"cas": True})
    with pytest.raises(OverflowError):
        mc.cas("k", 1, -1)


def test_gets_and_cas_need_the_cas_behavior(server):
    calls = [lambda c: c.gets("k"), lambda c: c.cas("k", 1, 1)]
    pylibmc_results, larder_results = run_both(server, calls)
    assert larder_results == pylibmc_results == [("raises", "ValueError")] * 2
    # The behavior is checked after an empty key and before the key's bytes.
    calls = [lambda c: c.gets(""), lambda c: c.gets("a b")]
    pylibmc_results, larder_results = run_both(server, calls, {"verify_keys": True})
    assert larder_results == pylibmc_results == [("ok", (None, None)), ("raises", "ValueError")]


VERIFY_KEYS = ["a b", "a\nb", "a\x01b", "\x00\x01", "é", "a\x7fb", "ok"]
VERIFY_CALLS = [
    lambda c, k: c.set(k, 1),
    lambda c, k: c.add(k, 1),
    lambda c, k: c.get(k),
    lambda c, k: c.delete(k),
    lambda c, k: c.get_multi([k, "ok"]),
    lambda c, k: c.set_multi({k: 1, "ok": 2}),
    lambda c, k: c.add_multi({k: 1}),
    lambda c, k: c.delete_multi([k]),
    lambda c, k: c.incr(k),
    lambda c, k: c.incr_multi([k]),
]


@pytest.mark.parametrize("key", VERIFY_KEYS, ids=repr)
def test_verify_keys_refuses_as_pylibmc(server, key):
    calls = [lambda c, call=call: call(c, key) for call in VERIFY_CALLS]
    pylibmc_results, larder_results = run_both(server, calls, {"verify_keys": True})
    assert larder_results == pylibmc_results


def test_verify_keys_judges_every_byte_as_pylibmc(server):
    # Every byte value, alone and between printable bytes (the checker's fast path takes
    # printable ASCII at once and looks closer at anything else).
    keys = [bytes([b]) for b in range(256)] + [b"ab" + bytes([b]) + b"cd" for b in range(256)]
    calls = [lambda c, k=k: c.get(k) for k in keys]
    pylibmc_results, larder_results = run_both(server, calls, {"verify_keys": True})
    assert larder_results == pylibmc_results


def test_without_verify_keys_only_spaces_and_control_bytes_are_refused(server):
    # pylibmc without verify_keys sends such a key and breaks its connection, so the
    # reference here is memcached's text protocol: a key is any bytes but space and control.
    mc = larder.Client([server.spec])
    for b in range(256):
        key = b"ab" + bytes([b]) + b"cd"
        if b <= 0x20 or b == 0x7F:
            with pytest.raises(larder.BadKeyProvided):
                mc.get_multi([key])
        else:
            assert mc.set(key, b)
            assert mc.get_multi([key]) == {key: b}


def test_stats_shape(server, mc, pmc):
    (lname, lstats), = mc.get_stats()
    (pname, pstats), = pmc.get_stats()
    assert lname == pname == f"{server.spec} (0)".encode()
    assert set(pstats) <= set(lstats)
    assert all(type(k) is str and type(v) is bytes for k, v in lstats.items())
    assert lstats["pid"] == pstats["pid"]
    (lname, slabs), = mc.get_stats("settings")
    assert slabs["item_size_max"] == b"1048576"


def test_get_multi_of_random_key_lists_fails_or_answers_as_pylibmc(server):
    # Seeded mixes of good keys, empty and too-long keys, refused bytes and non-keys, with
    # and without a prefix: the same exception class, or the same dict, as pylibmc.
    import random

    rng = random.Random(7)
    pieces = [
        "a", b"b", "c", b"", "", "x" * 251, b"y" * 251, "z" * 240, "a b", b"a\x01b",
        "é", 1, None, 2.5, b"\x7f", "ok",
    ]
    # No prefix is the argument left out: pylibmc refuses an explicit None (larder takes it).
    prefixes = [None, "", "p_", b"q_", "w" * 12]

    def get_multi(c, keys, prefix):
        return c.get_multi(keys) if prefix is None else c.get_multi(keys, key_prefix=prefix)

    calls = []
    for _ in range(300):
        keys = [rng.choice(pieces) for _ in range(rng.randrange(0, 6))]
        prefix = rng.choice(prefixes)
        calls.append(lambda c, keys=keys, prefix=prefix: get_multi(c, keys, prefix))
    setup = [lambda c: c.set_multi({"a": 1, "c": 2, "ok": 3}),
             lambda c: c.set_multi({"a": 4, "c": 5}, key_prefix="p_")]
    pylibmc_results, larder_results = run_both(server, setup + calls, {"verify_keys": True})
    assert larder_results == pylibmc_results


def test_incr_multi_raises_as_pylibmc_whichever_key_failed(server):
    # pylibmc counts every key, then raises by the *last* key's return code when exactly
    # one key failed (NotFound when only missing keys failed, Error for more failures).
    calls = [
        lambda c: c.set("a", 5),
        lambda c: c.incr_multi([b"a\x01b"]),
        lambda c: c.incr_multi([b"a\x01b", "a"]),
        lambda c: c.incr_multi([b"a\x01b", "nope"]),
        lambda c: c.incr_multi(["nope", b"a\x01b"]),
        lambda c: c.incr_multi(["a", b"a\x01b"]),
        lambda c: c.incr_multi(["nope", "a"]),
        lambda c: c.incr_multi([b"a\x01b", "a b", "a"]),
        lambda c: c.incr_multi(["x" * 245, "nope"], key_prefix="w" * 12),
        lambda c: c.incr_multi(["x" * 245, "a"], key_prefix="w" * 12),
        lambda c: c.get("a"),
    ]
    pylibmc_results, larder_results = run_both(server, calls, {"verify_keys": True})
    assert larder_results == pylibmc_results


def random_multi_write_calls():
    """Seeded random key lists through set_multi, add_multi, delete_multi and incr_multi,
    each call from the same items."""
    # The same seeded mixes through set_multi, add_multi, delete_multi and incr_multi: the
    # same exception class, or the same failed keys (of the type pylibmc reports: a bytes
    # key equal to a str key of the same mapping comes back as that str).
    import random

    rng = random.Random(11)
    pieces = [
        "a", b"b", "c", b"", "", "x" * 251, b"y" * 251, "z" * 240, "a b", b"a\x01b",
        "é", 1, 2.5, b"\x7f", "ok", b"a", "b",
    ]
    prefixes = [None, "", "p_", b"q_", "w" * 12]

    def kw(prefix):
        return {} if prefix is None else {"key_prefix": prefix}

    ops = [
        lambda c, keys, p: c.set_multi({k: 1 for k in keys}, **kw(p)),
        lambda c, keys, p: c.add_multi({k: 1 for k in keys}, **kw(p)),
        lambda c, keys, p: c.delete_multi(keys, **kw(p)),
        lambda c, keys, p: c.incr_multi(keys, **kw(p)),
    ]
    def fresh(c):
        # Each call from the same items: pylibmc's delete_multi deletes the keys before a
        # non-key it then raises TypeError for, where larder reads every key before it
        # deletes any, so the items left could differ after such a call.
        c.flush_all()
        c.set_multi({"a": 5, "ok": 1})

    calls = []
    for _ in range(400):
        keys = list(dict.fromkeys(rng.choice(pieces) for _ in range(rng.randrange(0, 5))))
        op, prefix = rng.choice(ops), rng.choice(prefixes)
        calls.append(lambda c, op=op, keys=keys, prefix=prefix: (fresh(c), op(c, keys, prefix)))
    return calls


def test_multi_key_writes_of_random_keys_fail_or_answer_as_pylibmc(server):
    pylibmc_results, larder_results = run_both(server, random_multi_write_calls(), {"verify_keys": True})
    assert larder_results == pylibmc_results


def negative_time_calls():
    """Writes with a negative time (memcached reads it as already expired; Django's
    memcached backends send -1 for a timeout of 0), each from the same items, with the
    items left after it."""

    def fresh(c):
        c.flush_all()
        c.set_multi({"a": b"1", "n": 5})

    def then(call):
        return lambda c: (fresh(c), call(c), sorted(c.get_multi(["a", "m", "n"]).items()))[1:]

    return [then(call) for call in [
        lambda c: c.set("a", b"2", time=-1),
        lambda c: c.set("m", b"2", time=-1),
        lambda c: c.set("a", b"2", -5),
        lambda c: c.add("a", b"2", time=-1),
        lambda c: c.add("m", b"2", time=-1),
        lambda c: c.replace("a", b"2", time=-1),
        lambda c: c.replace("m", b"2", time=-1),
        lambda c: c.append("a", b"2", -1),
        lambda c: c.prepend("a", b"2", -1),
        lambda c: c.cas("a", b"2", c.gets("a")[1], time=-1),
        lambda c: c.cas("a", b"2", 12345, time=-1),
        lambda c: c.cas("m", b"2", 12345, time=-1),
        lambda c: c.set_multi({"a": b"2", "m": b"3"}, time=-1),
        lambda c: c.add_multi({"a": b"2", "m": b"3"}, time=-1),
        lambda c: c.add_multi({"a": b"2", "m": b"3"}, time=-1, key_prefix="p_"),
        lambda c: c.touch("a", -1),
    ]]


def test_negative_times_write_already_expired_as_pylibmc(server):
    pylibmc_results, larder_results = run_both(server, negative_time_calls(), {"cas": True})
    assert larder_results == pylibmc_results


@pytest.mark.parametrize(
    "data", [b"10x", b"\x80\x04", b" 12 ", b"1_000", b"\xef\xbc\x91", b"-7"], ids=repr
)
def test_an_int_items_bytes_read_back_as_pylibmc(server, data):
    # An item flagged int whose bytes are not a plain number (an append onto a counter,
    # another writer): the same int, or the same exception class, as pylibmc.
    raw_set(server, b"iv", 4, data)
    results = [outcome(lambda m=m: m.Client([server.spec]).get("iv")) for m in (pylibmc, larder)]
    assert results[0] == results[1]


@pytest.mark.parametrize("value", ["md5", "crc", "modula", "bogus", 1, None], ids=repr)
def test_a_ketama_hash_value_is_taken_or_refused_as_by_pylibmc(server, value):
    # pylibmc names `ketama_hash`'s known hashes in Python; any other string reaches its C
    # layer, which wants an int (TypeError, where an unknown `hash` name is a KeyError).
    results = [
        outcome(lambda m=m: m.Client([server.spec], behaviors={"ketama_hash": value})
                .behaviors["ketama_hash"])
        for m in (pylibmc, larder)
    ]
    assert results[0] == results[1]
