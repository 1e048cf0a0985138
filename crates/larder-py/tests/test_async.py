"""larder.AsyncClient: every method answers as larder.Client does (the sync parity cases run
on it unchanged), hundreds of concurrent tasks each get their own values, a cancelled call
never leaves a connection out of step, and errors are the same typed errors."""

import asyncio
import inspect
import random
import socket
import threading

import larder
import pytest
from helpers import outcome
from test_parity import (
    CAS_CASES,
    CASES,
    VERIFY_CALLS,
    VERIFY_KEYS,
    negative_time_calls,
    random_multi_write_calls,
)


class Blocking:
    """An AsyncClient whose coroutine methods are run to completion on `loop`, one call at a
    time, so cases written for the blocking client run on it unchanged."""

    def __init__(self, client, loop):
        self._client = client
        self._loop = loop

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(getattr(type(self._client), name, None)):
            return attr

        def call(*args, **kwargs):
            return self._loop.run_until_complete(attr(*args, **kwargs))

        return call


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def run_faces(server, loop, calls, behaviors=None, binary=False):
    """Outcomes of `calls` on larder.Client, then on larder.AsyncClient, each from a flushed
    server and a fresh client."""
    results = []
    for make in (larder.Client, lambda *a, **k: Blocking(larder.AsyncClient(*a, **k), loop)):
        server.flush()
        client = make([server.spec], behaviors=behaviors, binary=binary)
        results.append([outcome(lambda: call(client)) for call in calls])
    return results


@pytest.mark.parametrize("name", CASES)
def test_same_outcomes_as_the_blocking_client(server, loop, name):
    sync_results, async_results = run_faces(server, loop, CASES[name])
    assert async_results == sync_results


@pytest.mark.parametrize("name", CAS_CASES)
def test_same_outcomes_with_cas(server, loop, name):
    sync_results, async_results = run_faces(server, loop, CAS_CASES[name], {"cas": True})
    assert async_results == sync_results


def test_random_multi_key_writes_as_the_blocking_client(server, loop):
    calls = random_multi_write_calls()
    sync_results, async_results = run_faces(server, loop, calls, {"verify_keys": True})
    assert async_results == sync_results


def test_negative_times_as_the_blocking_client(server, loop):
    sync_results, async_results = run_faces(server, loop, negative_time_calls(), {"cas": True})
    assert async_results == sync_results


@pytest.mark.parametrize("key", VERIFY_KEYS, ids=repr)
def test_verify_keys_as_the_blocking_client(server, loop, key):
    calls = [lambda c, call=call: call(c, key) for call in VERIFY_CALLS]
    sync_results, async_results = run_faces(server, loop, calls, {"verify_keys": True})
    assert async_results == sync_results


def test_binary_keys_and_compression_as_the_blocking_client(server, loop):
    big = "word " * 1000
    calls = [
        lambda c: c.set("\x00\x01 k", big, min_compress_len=10),
        lambda c: c.get("\x00\x01 k"),
        lambda c: server.raw(b"\x00\x01 k") is None,
        lambda c: c.get_multi(["\x00\x01 k", "nokey"]),
        lambda c: c.set("k", 1, compress_level=12),
    ]
    sync_results, async_results = run_faces(server, loop, calls, binary=True)
    assert async_results == sync_results
    assert sync_results[1] == ("ok", big)


def test_values_interoperate_with_the_blocking_client(servers, loop):
    specs = [s.spec for s in servers]
    mc = larder.Client(specs)
    amc = Blocking(larder.AsyncClient(specs), loop)
    values = {"b": b"bytes", "s": "text", "i": 2**70, "t": True, "p": {"x": [1, 2]}}
    assert amc.set_multi(values, min_compress_len=1) == []
    assert mc.get_multi(list(values)) == {**values, "t": 1}
    mc.set_multi({k + "2": v for k, v in values.items()})
    assert amc.get_multi([k + "2" for k in values]) == {k + "2": v for k, v in {**values, "t": 1}.items()}


def test_stats_and_the_local_methods(server, loop):
    mc = larder.Client([server.spec], behaviors={"ketama": True})
    amc = larder.AsyncClient([server.spec], behaviors={"ketama": True})
    (name, stats), = loop.run_until_complete(amc.get_stats())
    assert name == f"{server.spec} (0)".encode() and stats["pid"] == mc.get_stats()[0][1]["pid"]
    assert amc.behaviors == mc.behaviors and amc.behaviors["ketama"] == 1
    amc.behaviors["connect_timeout"] = 1234
    assert amc.behaviors["connect_timeout"] == 1234
    twin = amc.clone()
    assert type(twin) is larder.AsyncClient and twin.addresses == amc.addresses
    assert loop.run_until_complete(twin.set("k", "v"))
    assert loop.run_until_complete(amc.get("k")) == "v"
    assert amc.hash("k") == mc.hash("k") == 0
    assert amc.serialize([1]) == mc.serialize([1])
    assert amc.deserialize(*mc.serialize([1])) == [1]
    amc.disconnect_all()
    assert loop.run_until_complete(amc.get("k")) == "v"
    assert repr(amc) == f"AsyncClient([{server.spec!r}], binary=False)"


def test_the_methods_are_coroutines_with_the_blocking_signatures():
    for name in ("get", "set", "cas", "get_multi", "set_multi", "incr_multi", "get_stats"):
        method = getattr(larder.AsyncClient, name)
        assert inspect.iscoroutinefunction(method)
        assert inspect.signature(method) == inspect.signature(getattr(larder.Client, name))


def test_delete_cas(server, loop):
    amc = Blocking(larder.AsyncClient([server.spec], behaviors={"cas": True}), loop)
    mc = larder.Client([server.spec], behaviors={"cas": True})
    for client in (amc, mc):
        client.set("k", "v1")
        _, cas = client.gets("k")
        client.set("k", "v2")
        assert client.delete_cas("k", cas) is False and client.get("k") == "v2"
        _, cas = client.gets("k")
        assert client.delete_cas("k", cas) is True and client.get("k") is None
        assert client.delete_cas("k", cas) is False
        assert client.delete_cas("a b", 1) is False


JSON_FLAG = 256


class JsonAsync(larder.AsyncClient):
    def serialize(self, value):
        import json

        return json.dumps(value).encode(), JSON_FLAG

    def deserialize(self, data, flags):
        import json

        value = json.loads(data)
        if value == "miss":
            raise larder.CacheMiss
        return value


def test_subclass_overrides_on_every_path(server, loop):
    mc = Blocking(JsonAsync([server.spec], behaviors={"cas": True}), loop)
    assert mc.set("a", {"x": 1}) and mc.add("b", [1]) and mc.replace("b", [2])
    assert mc.set_multi({"c": "t", "m": "miss"}) == [] and mc.add_multi({"d": None}) == []
    _, cas = mc.gets("a")
    assert mc.cas("a", {"x": 2}, cas)
    assert all(server.raw(k.encode())[0] == JSON_FLAG for k in "abcdm")
    assert mc.get("a") == {"x": 2} and mc.gets("b")[0] == [2]
    assert mc.get_multi(list("abcdm")) == {"a": {"x": 2}, "b": [2], "c": "t", "d": None}
    assert mc.get("m", "dflt") == "dflt" and mc.gets("m") == (None, None)


def test_errors_from_deserialize_and_serialize_propagate(server, loop):
    class Broken(larder.AsyncClient):
        def deserialize(self, data, flags):
            raise RuntimeError("broken")

    class BadFlags(larder.AsyncClient):
        def serialize(self, value):
            return b"x", -1

    mc = Blocking(Broken([server.spec]), loop)
    mc.set("k", 1)
    for call in (lambda: mc.get("k"), lambda: mc.get_multi(["k"])):
        with pytest.raises(RuntimeError, match="broken"):
            call()
    with pytest.raises(ValueError):
        Blocking(BadFlags([server.spec]), loop).set("k", 1)


def test_hundreds_of_concurrent_tasks_get_their_own_values(servers):
    specs = [s.spec for s in servers]

    def value(i):
        return {"i": i, "pad": "x" * (i % 300)} if i % 3 else f"value-{i}" * (i % 50 + 1)

    async def task(mc, i):
        key = f"k{i}"
        assert await mc.set(key, value(i))
        for _ in range(3):
            assert await mc.get(key) == value(i)
            assert await mc.incr(f"n{i % 10}") >= 1
        batch = [f"k{j}" for j in range(i - i % 20, i + 1)]
        got = await mc.get_multi(batch)
        # Keys of the batch set by tasks not yet run are missing; none is another's.
        assert all(got[k] == value(int(k[1:])) for k in got) and got[key] == value(i)

    async def main():
        mc = larder.AsyncClient(specs)
        await mc.set_multi({f"n{d}": 0 for d in range(10)})
        await asyncio.gather(*(task(mc, i) for i in range(600)))
        counts = await mc.get_multi([f"n{d}" for d in range(10)])
        assert sum(counts.values()) == 600 * 3
        assert await mc.get_multi([f"k{i}" for i in range(600)]) == {
            f"k{i}": value(i) for i in range(600)
        }

    asyncio.run(main())


class HoldingProxy:
    """A TCP proxy to a memcached that, once a client sends `trigger` on a connection, holds
    the server's replies on that connection until `release()`; it records each connection
    it accepts and sets `closed[n]` when the client closes connection `n`."""

    def __init__(self, upstream_port, trigger):
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.closed = []
        self.triggered = threading.Event()
        self._released = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self):
        self._released.set()

    def close(self):
        self.release()
        self.listener.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            closed = threading.Event()
            self.closed.append(closed)
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            held = threading.Event()
            threading.Thread(target=self._up, args=(conn, upstream, held, closed), daemon=True).start()
            threading.Thread(target=self._down, args=(conn, upstream, held), daemon=True).start()

    def _up(self, conn, upstream, held, closed):
        try:
            while data := conn.recv(65536):
                if self.trigger in data:
                    held.set()
                    self.triggered.set()
                upstream.sendall(data)
        except OSError:
            pass
        closed.set()
        upstream.close()

    def _down(self, conn, upstream, held):
        try:
            while data := upstream.recv(65536):
                if held.is_set():
                    self._released.wait(10)
                conn.sendall(data)
        except OSError:
            pass


def test_a_cancelled_get_does_not_leave_its_connection_out_of_step(server):
    larder.Client([server.spec]).set_multi({"slow": "slow's value", "other": "other's value"})
    proxy = HoldingProxy(server.port, b"slow")

    async def main():
        amc = larder.AsyncClient([f"127.0.0.1:{proxy.port}"])
        assert await amc.get("other") == "other's value"
        assert proxy.accepted == 1
        task = asyncio.ensure_future(amc.get("slow"))
        loop = asyncio.get_running_loop()
        # The request reached the server; its reply is held: the get is mid-flight.
        assert await loop.run_in_executor(None, proxy.triggered.wait, 10)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The abandoned connection is closed, not put back in the pool.
        assert await loop.run_in_executor(None, proxy.closed[0].wait, 10)
        proxy.release()
        assert await amc.get("other") == "other's value"
        assert await amc.get_multi(["other", "slow"]) == {
            "other": "other's value",
            "slow": "slow's value",
        }
        assert proxy.accepted == 2

    try:
        asyncio.run(main())
    finally:
        proxy.close()


def test_wait_for_timeouts_under_load_never_mix_up_replies(servers):
    specs = [s.spec for s in servers]
    keys = [f"key{i}" for i in range(200)]

    def value(key):
        return f"{key}=" + key * 20

    larder.Client(specs).set_multi({k: value(k) for k in keys})
    rng = random.Random(16)
    tally = {"done": 0, "cancelled": 0}

    async def one(mc):
        picked = rng.sample(keys, 5)
        kind = rng.randrange(3)
        if kind == 0:
            call = mc.get(picked[0])
        elif kind == 1:
            call = mc.get_multi(picked)
        else:
            call = mc.set(picked[0], value(picked[0]))
        try:
            got = await asyncio.wait_for(call, rng.choice([0, 0.0002, 0.001, 0.003, 0.01, 1]))
        except asyncio.TimeoutError:
            tally["cancelled"] += 1
            return
        tally["done"] += 1
        if kind == 0:
            assert got == value(picked[0])
        elif kind == 1:
            assert got == {k: value(k) for k in picked}
        else:
            assert got is True

    async def main():
        mc = larder.AsyncClient(specs)
        for _ in range(4):
            await asyncio.gather(*(one(mc) for _ in range(150)))
        # Afterwards every connection left in the pools is in step.
        for key in keys:
            assert await mc.get(key) == value(key)
        assert await mc.get_multi(keys) == {k: value(k) for k in keys}

    asyncio.run(main())
    assert tally["cancelled"] > 0 and tally["done"] > 0


def test_dead_server_errors(closed_port):
    async def main():
        mc = larder.AsyncClient([f"127.0.0.1:{closed_port}"], behaviors={"connect_timeout": 500})
        with pytest.raises(larder.ConnectionError, match="refused"):
            await mc.get("k")
        for call in (mc.get("k"), mc.set("k", 1), mc.get_multi(["k"]), mc.incr("k")):
            with pytest.raises(larder.ServerDown, match="marked dead"):
                await call
        for call in (mc.flush_all(), mc.get_stats()):
            with pytest.raises(larder.SomeErrors):
                await call

    asyncio.run(main())


def test_bad_input_raises_typed_errors(server):
    async def main():
        mc = larder.AsyncClient([server.spec])
        with pytest.raises(TypeError, match="key must be str or bytes"):
            await mc.get(5)
        with pytest.raises(ValueError, match="too long"):
            await mc.set("k" * 251, 1)
        with pytest.raises(larder.TooBig, match="2097152 bytes"):
            await mc.set("big", b"x" * (2 << 20))
        with pytest.raises(larder.NotSupportedError):
            await mc.flush_all(10)
        with pytest.raises(larder.Error, match="empty server list"):
            larder.AsyncClient([])
        with pytest.raises(larder.Error, match="not configured"):
            await larder._larder.AsyncClient().get("k")
        assert await mc.set("after", 2) and await mc.get("after") == 2

    asyncio.run(main())
