"""Behaviors: pylibmc's names, defaults and read-back values; item assignment writes
through; unknown names and values raise as in pylibmc; what larder cannot honour raises
NotSupportedError; and the honoured ones change what the client does."""

import pickle
import socket
import time

import larder
import pytest
from helpers import outcome

pylibmc = pytest.importorskip("pylibmc")

# libmemcached reports the kernel's socket buffer sizes once connected; larder sets none.
KERNEL_REPORTED = {"_socket_send_size", "_socket_recv_size"}


def comparable(behaviors):
    return {k: v for k, v in behaviors.items() if k not in KERNEL_REPORTED}


SETTINGS = [
    None,
    {"ketama": True},
    {"ketama_weighted": True},
    {"ketama_weighted": True, "hash": "crc"},
    {"ketama": True, "distribution": "modula"},
    {"distribution": "consistent"},
    {"distribution": "consistent weighted"},
    {"hash": "md5", "ketama": 2, "cas": 5, "tcp_nodelay": True},
    {"remove_failed": 3},
    {"remove_failed": 3, "auto_eject": 0, "failure_limit": 4},
    {"auto_eject": 1, "retry_timeout": 7, "dead_timeout": 9},
    {"connect_timeout": 100, "receive_timeout": 250000, "send_timeout": 300000},
    {"_poll_timeout": 1000, "no_block": 1, "verify_keys": 1},
    {"pickle_protocol": 2},
    {"_retry_timeout": 3},
    {"ketama_hash": "md5", "ketama": True},
]


@pytest.mark.parametrize("behaviors", SETTINGS, ids=repr)
def test_behaviors_read_back_as_pylibmc(server, behaviors):
    lmc = larder.Client([server.spec], behaviors=behaviors)
    pmc = pylibmc.Client([server.spec], behaviors=behaviors)
    assert list(lmc.behaviors) == list(pmc.behaviors) == larder.all_behaviors
    assert comparable(lmc.behaviors) == comparable(pmc.behaviors)


def test_defaults(mc):
    b = mc.behaviors
    assert (b["connect_timeout"], b["retry_timeout"], b["remove_failed"]) == (4000, 2, 5)
    assert (b["pickle_protocol"], b["hash"], b["distribution"]) == (-1, "default", "modula")
    assert b["tcp_nodelay"] == 0 and b["cas"] == 0


def test_item_assignment_writes_through(server):
    for client in (larder.Client([server.spec]), pylibmc.Client([server.spec])):
        b = client.behaviors
        b["ketama"] = True
        assert client.behaviors["distribution"] == "consistent ketama"
        b.update({"connect_timeout": 55})
        assert client.behaviors["connect_timeout"] == 55
        client.behaviors = {"hash": "md5"}
        assert client.behaviors["hash"] == "md5"
        assert client.behaviors["connect_timeout"] == 55
        assert client.clone().behaviors["connect_timeout"] == 55


def test_assignment_changes_placement(servers):
    specs = [s.spec for s in servers]
    lmc, pmc = larder.Client(specs), pylibmc.Client(specs)
    keys = [f"k{i}" for i in range(200)]
    lmc.behaviors["ketama"] = True
    pmc.behaviors["ketama"] = True
    assert [lmc.hash(k) for k in keys] == [pmc.hash(k) for k in keys]
    lmc.set("k1", "v")
    assert servers[pmc.hash("k1")].raw(b"k1") is not None


ERRORS = [
    {"nope": 1},
    {"nope": 1, "other": 2},
    {1: 1},
    {"tcp_nodelay": "x"},
    {"connect_timeout": 1.5},
    {"connect_timeout": None},
    {"hash": "nope"},
    {"distribution": "nope"},
    {"hash": 99},
    {"hash": 1},
    {"hash": None},
    {"distribution": 0},
    {"distribution": "consistent max"},
    {"failure_limit": 0},
    {"remove_failed": 0},
]


@pytest.mark.parametrize("behaviors", ERRORS, ids=repr)
def test_bad_behaviors_raise_as_pylibmc(server, behaviors):
    got = [
        outcome(lambda m=m: m.Client([server.spec], behaviors=behaviors))[0:2]
        for m in (pylibmc, larder)
    ]
    assert got[0][0] == got[1][0] == "raises"
    assert got[1] == got[0]


def test_unknown_name_on_assignment(mc):
    with pytest.raises(ValueError, match="unknown behavior names: nope"):
        mc.behaviors["nope"] = 1
    with pytest.raises(ValueError):
        mc.behaviors = {"nope": 1}


UNSUPPORTED = [
    {"tcp_keepalive": 1},
    {"buffer_requests": 1},
    {"_noreply": 1},
    {"num_replicas": 1},
    {"_sort_hosts": 1},
    {"_hash_with_prefix_key": 1},
    {"_io_msg_watermark": 1},
    {"_socket_send_size": 4096},
    {"connect_timeout": -5},
    {"connect_timeout": 0},
    {"retry_timeout": -1},
    {"receive_timeout": -1},
    {"namespace": "ns"},
]


@pytest.mark.parametrize("behaviors", UNSUPPORTED, ids=repr)
def test_behaviors_larder_cannot_honour_raise(mc, server, behaviors):
    with pytest.raises(larder.NotSupportedError, match=next(iter(behaviors)).lstrip("_")):
        larder.Client([server.spec], behaviors=behaviors)
    before = dict(mc.behaviors)
    with pytest.raises(larder.NotSupportedError):
        mc.behaviors = behaviors
    assert dict(mc.behaviors) == before


def test_verify_keys_with_binary_is_refused_as_by_libmemcached(server):
    for m in (pylibmc, larder):
        with pytest.raises(m.Error):
            m.Client([server.spec], binary=True, behaviors={"verify_keys": True})


def test_pickle_protocol_is_used(server):
    mc = larder.Client([server.spec], behaviors={"pickle_protocol": 1})
    mc.set("k", [1])
    assert server.raw(b"k") == (1, pickle.dumps([1], 1))
    mc.behaviors["pickle_protocol"] = 99
    with pytest.raises(ValueError):
        mc.set("k", [1])


def test_receive_timeout_bounds_a_silent_server():
    # A server that accepts and never answers: the read gives up after receive_timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        spec = "127.0.0.1:%d" % listener.getsockname()[1]
        mc = larder.Client([spec], behaviors={"receive_timeout": 200_000})
        started = time.monotonic()
        with pytest.raises(larder.Error, match="timed out"):
            mc.get("k")
        assert time.monotonic() - started < 5
        # The failure disabled the server (pylibmc's ServerDown until retry_timeout).
        with pytest.raises(larder.ServerDown):
            mc.get("k")
