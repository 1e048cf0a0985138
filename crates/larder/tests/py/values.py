"""Value interop oracle: the Python memcached clients write and read values on a server.

  values.py write HOST:PORT   each client stores its own keys "<client>:<kind>"
  values.py read HOST:PORT K1,K2,...
                              each client reads the keys; prints JSON
                              {client: {key: [type name, repr] or null}}
Clients: pylibmc, python-memcached ("pymc"), pymemcache ("pymemcache").
"""
import json
import sys

BIG = 10**30
LONG_TEXT = "compress me " * 200


def clients(addr):
    import memcache
    import pylibmc
    from pymemcache import serde
    from pymemcache.client.base import Client as PymemcacheClient

    host, port = addr.rsplit(":", 1)
    return {
        "pylibmc": pylibmc.Client([addr]),
        "pymc": memcache.Client([addr]),
        "pymemcache": PymemcacheClient(
            (host, int(port)), serde=serde.CompressedSerde(min_compress_len=100)
        ),
    }


def write(addr):
    for name, c in clients(addr).items():
        values = {
            "bytes": b"\x00\xffraw\r\nbytes",
            "str": "h\u00e9llo w\u00f6rld",
            "int": 42,
            "neg": -7,
            "big": BIG,
            "bool": True,
            "pickle": {"a": [1, 2]},
        }
        for kind, value in values.items():
            assert c.set("%s:%s" % (name, kind), value), (name, kind)
        key = "%s:zstr" % name
        if name == "pymemcache":
            assert c.set(key, LONG_TEXT)
        else:
            assert c.set(key, LONG_TEXT, min_compress_len=100)


def read(addr, keys):
    out = {}
    for name, c in clients(addr).items():
        got = {}
        for key in keys:
            try:
                value = c.get(key)
            except Exception as e:  # an unknown flag makes pylibmc raise
                got[key] = ["error", type(e).__name__]
                continue
            got[key] = None if value is None else [type(value).__name__, repr(value)]
        out[name] = got
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    mode, addr = sys.argv[1], sys.argv[2]
    if mode == "write":
        write(addr)
    else:
        read(addr, sys.argv[3].split(","))
