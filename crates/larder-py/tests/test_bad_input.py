"""Bad input and misbehaving servers: typed errors that say what was wrong, never a Rust
panic across the FFI boundary (PyO3 would raise pyo3_runtime.PanicException)."""

import socket
import time

import larder
import pytest

pylibmc = pytest.importorskip("pylibmc")


# The largest value memcached 1.6 stores under the 3-byte key "big" with flags 0 at its
# default -I 1m: the item header (48), the key and its NUL, "\r\n" and the CAS value (8)
# count against the 1 MiB too.
BIG_LIMIT = (1 << 20) - (48 + 3 + 1 + 2 + 8)


def test_too_big_names_the_size_and_the_limit(mc):
    with pytest.raises(larder.TooBig, match=rf"2097152 bytes, limit {BIG_LIMIT}"):
        mc.set("big", b"x" * (2 << 20))
    with pytest.raises(larder.TooBig, match=rf"limit {BIG_LIMIT}"):
        mc.set_multi({"small": 1, "big": b"x" * (2 << 20)})
    with pytest.raises(larder.TooBig, match=rf"limit {BIG_LIMIT}"):
        mc.add_multi({"big": b"x" * (2 << 20)})
    # Exactly 1 MiB no longer fits once the item header counts: refused before sending.
    with pytest.raises(larder.TooBig, match=rf"1048576 bytes, limit {BIG_LIMIT}"):
        mc.set("big", b"x" * (1 << 20))
    assert mc.get("small") is None and mc.get("big") is None
    # The limit is the server's: one byte over is refused, the limit itself is stored.
    with pytest.raises(larder.TooBig, match=rf"{BIG_LIMIT + 1} bytes, limit {BIG_LIMIT}"):
        mc.set("big", b"x" * (BIG_LIMIT + 1))
    assert mc.set("big", b"x" * BIG_LIMIT)
    assert mc.get("big") == b"x" * BIG_LIMIT
    assert mc.set("after", 1) and mc.get("after") == 1


def test_too_big_after_compression_counts_the_stored_size(mc):
    # Compressed below the limit, it is stored.
    assert mc.set("big", b"a" * (3 << 20), min_compress_len=1)
    assert mc.get("big") == b"a" * (3 << 20)


def test_key_errors(mc):
    with pytest.raises(TypeError, match="key must be str or bytes, not int"):
        mc.get(5)
    with pytest.raises(ValueError, match="key length 251 too long, max is 250"):
        mc.set("k" * 251, 1)
    with pytest.raises(larder.BadKeyProvided, match="0x20 at offset 1"):
        mc.get("a b")
    assert mc.set("a b", 1) is False
    with pytest.raises(UnicodeEncodeError):
        mc.get("\ud800")


def test_binary_keys_too_long_for_base64(server):
    mc = larder.Client([server.spec], binary=True)
    assert mc.set("\x00" * 186, 1) and mc.get("\x00" * 186) == 1
    with pytest.raises(ValueError, match="max is 186"):
        mc.set("\x00" * 187, 1)
    assert mc.set("x" * 250, 2) and mc.get("x" * 250) == 2


def test_dead_server_fails_fast_with_server_down(closed_port):
    mc = larder.Client([f"127.0.0.1:{closed_port}"], behaviors={"connect_timeout": 500})
    started = time.monotonic()
    with pytest.raises(larder.ConnectionError, match="refused"):
        mc.get("k")
    for call in (
        lambda: mc.get("k"),
        lambda: mc.set("k", 1),
        lambda: mc.get_multi(["k"]),
        lambda: mc.set_multi({"k": 1}),
        lambda: mc.delete("k"),
        lambda: mc.incr("k"),
    ):
        with pytest.raises(larder.ServerDown, match="marked dead"):
            call()
    for call in (mc.flush_all, mc.get_stats):
        with pytest.raises(larder.SomeErrors):
            call()
    assert time.monotonic() - started < 5


def test_remove_failed_moves_keys_to_live_servers(server, closed_port):
    specs = [f"127.0.0.1:{closed_port}", server.spec]
    mc = larder.Client(specs, behaviors={"remove_failed": 1, "retry_timeout": 60})
    dead_keys = [k for k in (f"k{i}" for i in range(100)) if mc.hash(k) == 0]
    with pytest.raises(larder.ConnectionError):
        mc.set(dead_keys[0], 1)
    for key in dead_keys:
        assert mc.set(key, key)
    assert server.raw(dead_keys[-1].encode()) is not None
    assert mc.get_multi(dead_keys) == {k: k for k in dead_keys}


def test_partial_multi_get_returns_the_live_servers_hits(server, closed_port):
    mc = larder.Client([f"127.0.0.1:{closed_port}", server.spec])
    live = [k for k in (f"k{i}" for i in range(40)) if mc.hash(k) == 1]
    dead = [k for k in (f"k{i}" for i in range(40)) if mc.hash(k) == 0]
    assert live and dead
    for key in live:
        larder.Client([server.spec]).set(key, key)
    assert mc.get_multi(live + dead) == {k: k for k in live}


def test_garbage_from_the_server_is_a_protocol_error():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        mc = larder.Client(["127.0.0.1:%d" % listener.getsockname()[1]])
        import threading

        def serve():
            conn, _ = listener.accept()
            conn.recv(4096)
            conn.sendall(b"NONSENSE \xff\xfe\r\n")
            conn.close()

        t = threading.Thread(target=serve)
        t.start()
        with pytest.raises(larder.ProtocolError):
            mc.get("k")
        t.join()


ODD = [
    None,
    1.5,
    -1,
    2**64,
    10**5000,
    object(),
    b"",
    "",
    b"\x00" * 300,
    "\x00",
    "x" * 100_000,
    bytearray(b"k"),
    memoryview(b"k"),
    ["k"],
    {"k": 1},
    ("k",),
    iter(["k"]),
    "\ud800",
    type("S", (str,), {})("sub"),
    type("B", (bytes,), {})(b"sub"),
]


def calls(mc, odd):
    return [
        lambda: mc.get(odd),
        lambda: mc.get("k", odd),
        lambda: mc.set(odd, 1),
        lambda: mc.set("k", odd),
        lambda: mc.set("k", 1, time=odd),
        lambda: mc.set("k", 1, min_compress_len=odd),
        lambda: mc.set("k", 1, compress_level=odd),
        lambda: mc.add(odd, odd),
        lambda: mc.append("k", odd),
        lambda: mc.cas("k", 1, odd),
        lambda: mc.gets(odd),
        lambda: mc.delete(odd),
        lambda: mc.incr(odd),
        lambda: mc.incr("n", odd),
        lambda: mc.touch("k", odd),
        lambda: mc.get_multi(odd),
        lambda: mc.get_multi([odd]),
        lambda: mc.get_multi(["k"], key_prefix=odd),
        lambda: mc.set_multi(odd),
        lambda: mc.set_multi({"k": odd}),
        lambda: mc.set_multi({odd: 1} if isinstance(odd, (str, bytes, int, float)) else {}),
        lambda: mc.delete_multi(odd),
        lambda: mc.incr_multi(odd),
        lambda: mc.incr_multi(["n"], delta=odd),
        lambda: mc.flush_all(odd),
        lambda: mc.get_stats(odd),
        lambda: mc.hash(odd),
        lambda: mc.deserialize(odd, 0),
        lambda: mc.deserialize(b"x", odd),
        lambda: mc.serialize(odd),
        lambda: setattr(mc, "behaviors", odd),
        lambda: mc.behaviors.__setitem__("connect_timeout", odd),
        lambda: larder.Client(odd),
        lambda: larder.Client([odd]),
    ]


@pytest.mark.parametrize("odd", ODD, ids=lambda o: type(o).__name__)
def test_odd_inputs_never_panic(server, odd):
    mc = larder.Client([server.spec], behaviors={"cas": True})
    mc.set("n", 1)
    for call in calls(mc, odd):
        try:
            call()
        except Exception:  # noqa: BLE001 - any typed error is fine, a panic is not
            pass
        except BaseException as e:  # PanicException derives from BaseException
            pytest.fail(f"{type(e).__name__}: {e}")
    assert mc.set("after", 2) and mc.get("after") == 2


@pytest.mark.parametrize(
    "spec",
    ["", "host:", "host:abc", "host:1:x", "[::1", "[::1]x", "host:99999", "udp:host", "h:1:0",
     "/tmp/sock:3", "host:1:2:3"],
)
def test_bad_server_specs_raise(spec):
    with pytest.raises((ValueError, larder.Error)):
        larder.Client([spec]).get("k")


def test_empty_server_list_and_sasl():
    with pytest.raises(larder.Error, match="empty server list"):
        larder.Client([])
    with pytest.raises(ValueError):
        larder.Client("127.0.0.1:11211")
    with pytest.raises(larder.NotSupportedError, match="SASL") as e:
        larder.Client(["127.0.0.1"], binary=True, username="u", password="s3cret")
    assert "s3cret" not in str(e.value) and "s3cret" not in repr(e.value)
    with pytest.raises(larder.NotSupportedError):
        larder.Client(["127.0.0.1"], password="s3cret")
    with pytest.raises(larder.NotSupportedError, match="UDP"):
        larder.Client(["udp:127.0.0.1"])
    with pytest.raises(ValueError, match="mix"):
        larder.Client(["/tmp/a.sock", "127.0.0.1"])


def test_flush_all_with_a_delay_is_refused(mc):
    with pytest.raises(larder.NotSupportedError):
        mc.flush_all(10)


def test_unconfigured_client_raises():
    bare = larder._larder.Client()
    with pytest.raises(larder.Error, match="not configured"):
        bare.get("k")
