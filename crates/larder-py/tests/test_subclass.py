"""A subclass's own serialize/deserialize is used on every get and set path, as in pylibmc;
CacheMiss raised by deserialize is a miss; a bad serialize result raises as in pylibmc."""

import json

import larder
import pytest
from helpers import outcome

pylibmc = pytest.importorskip("pylibmc")

JSON_FLAG = 256


def json_client(base):
    class JsonClient(base):
        def serialize(self, value):
            if isinstance(value, bytes):
                return super().serialize(value)
            return json.dumps(value).encode(), JSON_FLAG

        def deserialize(self, data, flags):
            if flags == JSON_FLAG:
                value = json.loads(data)
                if value == "miss":
                    raise larder.CacheMiss if base is larder.Client else pylibmc.CacheMiss
                return value
            return super().deserialize(data, flags)

    return JsonClient


@pytest.mark.parametrize("module", [larder, pylibmc], ids=lambda m: m.__name__)
def test_every_path_uses_the_overrides(server, module):
    mc = json_client(module.Client)([server.spec], behaviors={"cas": True})
    assert mc.set("a", {"x": 1})
    assert mc.add("b", [1, 2])
    assert mc.replace("b", [3])
    assert mc.set_multi({"c": "text", "d": 5}) == []
    assert mc.add_multi({"e": None}) == []
    _, cas = mc.gets("a")
    assert mc.cas("a", {"x": 2}, cas)
    for key in "abcde":
        assert server.raw(key.encode())[0] == JSON_FLAG
    assert server.raw(b"d")[1] == b"5"
    assert mc.get("a") == {"x": 2}
    assert mc.gets("b")[0] == [3]
    assert mc.get_multi(["a", "b", "c", "d", "e"]) == {
        "a": {"x": 2}, "b": [3], "c": "text", "d": 5, "e": None
    }
    assert mc["c"] == "text"
    # bytes go through the base class's serialize: stored as pylibmc's flag 0.
    mc.set("raw", b"bytes")
    assert server.raw(b"raw") == (0, b"bytes") and mc.get("raw") == b"bytes"


@pytest.mark.parametrize("module", [larder, pylibmc], ids=lambda m: m.__name__)
def test_cache_miss_from_deserialize_is_a_miss(server, module):
    mc = json_client(module.Client)([server.spec], behaviors={"cas": True})
    mc.set("m", "miss")
    mc.set("h", "hit")
    assert mc.get("m") is None
    assert mc.get("m", "dflt") == "dflt"
    assert mc.gets("m") == (None, None)
    assert mc.get_multi(["m", "h"]) == {"h": "hit"}
    assert "m" not in mc


def test_values_compress_after_a_custom_serialize(server):
    # As pylibmc, deserialize is handed the stored flags, zlib's bit included.
    seen = {}

    def recording(base):
        class Recording(json_client(base)):
            def deserialize(self, data, flags):
                seen.setdefault(base.__module__.split(".")[0], []).append(flags)
                return json.loads(data)

        return Recording

    mc = recording(larder.Client)([server.spec])
    pmc = recording(pylibmc.Client)([server.spec])
    big = ["word"] * 500
    mc.set("l", big, min_compress_len=10)
    pmc.set("p", big, min_compress_len=10)
    assert server.raw(b"l")[0] == server.raw(b"p")[0] == JSON_FLAG | 8
    assert mc.get("p") == big and pmc.get("l") == big
    assert mc.get_multi(["p"]) == {"p": big}
    assert seen["larder"] == [JSON_FLAG | 8] * 2
    assert seen["pylibmc"] == [JSON_FLAG | 8]


def bad_serializer(base, result):
    class Bad(base):
        def serialize(self, value):
            return result

    return Bad


BAD_RESULTS = [b"not a tuple", (b"x",), (b"x", 1, 2), (b"x", "1"), (b"x", None), ("str", 0), (5, 0), [b"x", 0]]


@pytest.mark.parametrize("result", BAD_RESULTS, ids=repr)
def test_bad_serialize_results_raise_as_pylibmc(server, result):
    got = []
    for m in (pylibmc, larder):
        mc = bad_serializer(m.Client, result)([server.spec])
        got.append([outcome(lambda: mc.set("k", 1)), outcome(lambda: mc.set_multi({"k": 1}))])
    assert got[1] == got[0]
    # pylibmc reads the first two items of any longer tuple.
    assert got[1][0][0] == ("ok" if isinstance(result, tuple) and len(result) > 2 else "raises")


def test_bad_flags_from_serialize(server):
    for flags in (-1, 2**32):
        mc = bad_serializer(larder.Client, (b"x", flags))([server.spec])
        with pytest.raises(ValueError):
            mc.set("k", 1)


def test_deserialize_errors_propagate(server):
    class Broken(larder.Client):
        def deserialize(self, data, flags):
            raise RuntimeError("broken")

    mc = Broken([server.spec])
    mc.set("k", 1)
    with pytest.raises(RuntimeError, match="broken"):
        mc.get("k")
    with pytest.raises(RuntimeError):
        mc.get_multi(["k"])


def test_native_methods_match_pylibmc(server, mc, pmc):
    for value in [b"b", "s", 5, 2**80, True, [1]]:
        assert mc.serialize(value) == pmc.serialize(value)
        data, flags = pmc.serialize(value)
        assert mc.deserialize(data, flags) == pmc.deserialize(data, flags)
