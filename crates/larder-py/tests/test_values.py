"""Values written by pylibmc are read by larder and the reverse, with the same flags and
bytes on the server, for every type pylibmc knows, with and without compression."""

import os
import pickle

import larder
import pytest
from helpers import outcome, raw_set

pylibmc = pytest.importorskip("pylibmc")

VALUES = [
    b"bytes",
    b"",
    b"\x00\xff binary",
    "text",
    "",
    "héllo ☃",
    0,
    5,
    -3,
    2**63 - 1,
    2**100,
    -(2**70),
    True,
    False,
    1.5,
    [1, "two", 3.0],
    None,
    {"a": (1, 2)},
    bytearray(b"ab"),
]


def expected(value):
    # pylibmc stores a bool as flag 2 and reads it back as an int, as every Python client.
    return int(value) if isinstance(value, bool) else value


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_same_flags_and_bytes_as_pylibmc(server, mc, pmc, value):
    assert pmc.set("by-pylibmc", value)
    assert mc.set("by-larder", value)
    assert server.raw(b"by-larder") == server.raw(b"by-pylibmc")


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_larder_reads_pylibmc_values(mc, pmc, value):
    assert pmc.set("k", value)
    got = mc.get("k")
    assert got == expected(value) and type(got) is type(expected(value))


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_pylibmc_reads_larder_values(mc, pmc, value):
    assert mc.set("k", value)
    got = pmc.get("k")
    assert got == expected(value) and type(got) is type(expected(value))


def test_flags_of_each_type(server, mc):
    for value, flags in [(b"b", 0), ("s", 16), (7, 4), (True, 2), (False, 2), (1.0, 1)]:
        mc.set("k", value)
        assert server.raw(b"k")[0] == flags, value
    mc.set("k", True)
    assert server.raw(b"k") == (2, b"1")


COMPRESSIBLE = [b"a" * 2000, "ü" * 1000, list(range(500)), 10**3000]


@pytest.mark.parametrize("value", COMPRESSIBLE, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("level", [-1, 1, 6, 9])
def test_compressed_values_interoperate(server, mc, pmc, value, level):
    assert mc.set("l", value, min_compress_len=100, compress_level=level)
    assert pmc.set("p", value, min_compress_len=100, compress_level=level)
    (lflags, ldata), (pflags, _) = server.raw(b"l"), server.raw(b"p")
    assert lflags == pflags and lflags & 8
    assert len(ldata) < 1000
    assert pmc.get("l") == value and mc.get("p") == value
    assert mc.get_multi(["l", "p"]) == {"l": value, "p": value}


def test_compression_thresholds_match_pylibmc(server, mc, pmc):
    data = b"z" * 100
    cases = [
        dict(min_compress_len=100),  # length >= threshold: compressed
        dict(min_compress_len=101),  # shorter than the threshold
        dict(min_compress_len=0),  # 0 turns it off
        dict(min_compress_len=10, compress_level=0),  # level 0 turns it off
    ]
    for kwargs in cases:
        mc.set("l", data, **kwargs)
        pmc.set("p", data, **kwargs)
        assert server.raw(b"l")[0] == server.raw(b"p")[0], kwargs
    assert server.raw(b"l")[0] == 0
    mc.set("l", data, min_compress_len=100)
    assert server.raw(b"l")[0] == 8


def test_incompressible_values_stay_plain(server, mc, pmc):
    noise = os.urandom(300)
    mc.set("l", noise, min_compress_len=1)
    pmc.set("p", noise, min_compress_len=1)
    assert server.raw(b"l") == server.raw(b"p") == (0, noise)


@pytest.mark.parametrize("level", [10, -2, 100])
def test_bad_compress_level(mc, pmc, level):
    for client in (mc, pmc):
        with pytest.raises(ValueError):
            client.set("k", b"v", compress_level=level)
        with pytest.raises(ValueError):
            client.set_multi({"k": b"v"}, compress_level=level)


def test_set_multi_compresses_as_pylibmc(server, mc, pmc):
    big = b"q" * 5000
    assert mc.set_multi({"a": big, "b": b"tiny"}, min_compress_len=1000) == []
    assert pmc.set_multi({"c": big, "d": b"tiny"}, min_compress_len=1000) == []
    assert server.raw(b"a")[0] == server.raw(b"c")[0] == 8
    assert server.raw(b"b") == server.raw(b"d") == (0, b"tiny")
    assert pmc.get("a") == big and mc.get("c") == big


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_pickle_protocol_behavior(server, server_spec_clients, protocol):
    mc, pmc = server_spec_clients({"pickle_protocol": protocol})
    value = {"nested": [1, 2, (3, 4)]}
    mc.set("l", value)
    pmc.set("p", value)
    assert server.raw(b"l") == server.raw(b"p")
    assert server.raw(b"l")[1] == pickle.dumps(value, protocol)


@pytest.fixture
def server_spec_clients(server):
    def make(behaviors):
        return (
            larder.Client([server.spec], behaviors=behaviors),
            pylibmc.Client([server.spec], behaviors=behaviors),
        )

    return make


RAW = [
    (0, b"plain"),
    (32, b"unknown high bit"),  # bits outside pylibmc's type bits are ignored
    (3, b"two type bits"),
    (6, b"12"),
    (4, b"not a number"),
    (4, b" 42 "),
    (2, b"-17"),
    (16, b"\xff\xfe not utf-8"),
    (1, b"not a pickle"),
    (8, b"not zlib"),
    (8 | 16, b"not zlib"),
]


@pytest.mark.parametrize("flags,data", RAW, ids=repr)
def test_odd_stored_values_read_as_pylibmc_reads_them(server, mc, pmc, flags, data):
    raw_set(server, b"odd", flags, data)
    assert outcome(lambda: mc.get("odd")) == outcome(lambda: pmc.get("odd"))
    assert outcome(lambda: mc.get_multi(["odd"])) == outcome(lambda: pmc.get_multi(["odd"]))


def test_binary_keys_reach_the_same_items(server):
    keys = ["\x00\x01", "a b", "tab\tkey", "\x7f", "é ü"]
    lmc = larder.Client([server.spec], binary=True)
    bmc = pylibmc.Client([server.spec], binary=True)
    for i, key in enumerate(keys):
        assert bmc.set(key, i)
        assert lmc.get(key) == i
        assert lmc.set(key, f"larder {i}")
        assert bmc.get(key) == f"larder {i}"
    assert lmc.get_multi(keys) == {k: f"larder {i}" for i, k in enumerate(keys)}
    assert lmc.delete_multi(keys)
    assert bmc.get_multi(keys) == {}


def test_get_multi_of_compressed_values_reads_as_pylibmc(server, mc, pmc):
    # Compressed hits are inflated off the GIL, apart from the rest: mixed with plain ones,
    # under a prefix, with a key passed twice (str and bytes), and one that does not inflate.
    big = {"rows": list(range(2000))}
    assert pmc.set_multi({"z1": big, "z2": "x" * 5000, "p": b"plain"}, key_prefix="pre:",
                         min_compress_len=100) == []
    raw_set(server, b"pre:bad", 8, b"not zlib")
    keys = ["z1", "z2", "p", b"z1", "missing"]
    assert mc.get_multi(keys, key_prefix="pre:") == pmc.get_multi(keys, key_prefix="pre:")
    assert mc.get_multi(keys, key_prefix="pre:")["z1"] == big
    both = keys + ["bad"]
    assert outcome(lambda: mc.get_multi(both, key_prefix="pre:")) == outcome(
        lambda: pmc.get_multi(both, key_prefix="pre:")
    )
