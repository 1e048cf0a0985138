"""pylibmc's pools and the Python-level client: mapping protocol, repr, clone."""

import queue
import threading

import larder
import pytest

pylibmc = pytest.importorskip("pylibmc")


def test_client_pool_reserve_does_not_block_by_default(mc):
    pool = larder.ClientPool(mc, 2)
    with pool.reserve() as a, pool.reserve() as b:
        assert a is not b and a is not mc
        assert a.set("k", 1) and b.get("k") == 1
        with pytest.raises(queue.Empty):
            with pool.reserve():
                pass
    with pool.reserve() as c:
        assert c in (a, b)


def test_client_pool_reserve_block_waits_for_a_return(mc):
    pool = larder.ClientPool()
    pool.fill(mc, 1)
    held = threading.Event()
    release = threading.Event()
    got = []

    def holder():
        with pool.reserve() as c:
            held.set()
            release.wait()
            got.append(c)

    t = threading.Thread(target=holder)
    t.start()
    held.wait()
    with pytest.raises(queue.Empty):
        pool.reserve().__enter__()
    release.set()
    with pool.reserve(block=True) as c:
        assert c.set("k", 2)
    t.join()
    assert got and got[0] is c


def test_thread_mapped_pool(mc):
    pool = larder.ThreadMappedPool(mc)
    with pool.reserve() as a:
        assert a.set("k", 3)
    with pool.reserve() as again:
        assert again is a
    other = []

    def elsewhere():
        with pool.reserve() as c:
            other.append(c)
            assert c.get("k") == 3
        assert pool.relinquish() is c

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    assert other[0] is not a and other[0] is not mc
    assert pool.relinquish() is a
    assert pool.relinquish() is None
    assert len(pool) == 0


def test_mapping_protocol(mc, pmc):
    for client in (mc, pmc):
        client["k"] = "v"
        assert client["k"] == "v"
        assert "k" in client and "nokey" not in client
        del client["k"]
        with pytest.raises(KeyError):
            client["k"]
        with pytest.raises(KeyError):
            del client["k"]
    mc["empty"] = b""
    assert "empty" in mc and mc["empty"] == b""


def test_repr_str_and_attributes(server):
    for m in (larder, pylibmc):
        c = m.Client([server.spec], binary=True)
        assert repr(c) == f"Client([{server.spec!r}], binary=True)"
        assert str(c) == f"<Client for {server.spec}, binary=True>"
        assert c.addresses == [server.spec] and c.binary is True


def test_clone_keeps_class_settings_and_shares_data(server):
    class Mine(larder.Client):
        pass

    mc = Mine([server.spec], behaviors={"cas": True})
    twin = mc.clone()
    assert type(twin) is Mine and twin is not mc
    assert twin.addresses == mc.addresses and twin.binary is False
    assert twin.behaviors["cas"] == 1
    twin.set("k", 1)
    assert mc.get("k") == 1
    twin.behaviors["cas"] = False
    assert mc.behaviors["cas"] == 1 and twin.behaviors["cas"] == 0


def test_subclass_with_its_own_init(server):
    class Named(larder.Client):
        def __init__(self, name, servers, **kwargs):
            super().__init__(servers, **kwargs)
            self.name = name

    c = Named("cache", [server.spec], behaviors={"ketama": True})
    assert c.name == "cache" and c.behaviors["ketama"] == 1
    assert c.set("k", 1) and c.get("k") == 1


def test_disconnect_all_then_reuse(mc):
    mc.set("k", 1)
    assert mc.disconnect_all() is None
    assert mc.get("k") == 1


def test_module_names_match_pylibmc():
    names = [n for n, _ in pylibmc.exceptions]
    assert [n for n, _ in larder.exceptions] == names
    for name in names:
        cls, theirs = getattr(larder, name), getattr(pylibmc, name)
        assert [c.__name__ for c in cls.__mro__] == [c.__name__ for c in theirs.__mro__]
        assert cls.__module__ == "larder"
        if name != "Error":
            assert cls.__bases__ == (larder.Error,)
        if name not in ("Error", "CacheMiss"):
            assert cls.retcode == theirs.retcode
    assert larder.CacheMiss.__bases__ == (larder.Error,)
    assert larder.MemcachedError is larder.Error
    assert larder.hashers == pylibmc.hashers
    assert larder.distributions == pylibmc.distributions
    assert larder.all_behaviors == pylibmc.all_behaviors
    assert larder.all_callbacks == pylibmc.all_callbacks
