#!/usr/bin/env python3
"""Python memcached clients on the same workloads as larder's `vs_python` bench.

Given server addresses (host:port, comma-separated; the first one serves the single-key
round trips, all of them the multi-get), measures for 1 caller:

- get: single `get` round trips of a 100-byte value on one server (ops/s)
- set: single `set` round trips of a 100-byte value on one server (ops/s)
- get_multi: 100-key multi-gets spread over all servers (keys/s)

with pylibmc (C, libmemcached; text protocol, tcp_nodelay, ketama) and pymemcache
(base Client for one server, HashClient for several). Prints one JSON object; a client
that is not installed is listed under "missing". Installs nothing (bench/run.sh does).

    python3 bench/python_clients.py --servers 127.0.0.1:11211,127.0.0.1:11212 [--duration 1.5]
"""

import argparse
import json
import sys
import time

VALUE = b"v" * 100
MULTI = 100


def rate(op, duration, units=1):
    """Calls op() for `duration` seconds; returns units per second."""
    # Warm up: connections opened, code paths hot.
    for _ in range(50):
        op()
    n = 0
    start = time.perf_counter()
    deadline = start + duration
    while True:
        # Check the clock every 64 calls so it costs little next to the round trip.
        for _ in range(64):
            op()
        n += 64
        now = time.perf_counter()
        if now >= deadline:
            return n * units / (now - start)


def measure(single, multi, get_multi, duration, tag):
    """Runs the three workloads with a one-server client and a many-server client."""
    key = "bench:py:%s" % tag
    # The same multi-get key names as the Rust side: with the same ketama ring they land on
    # the same servers in the same split, so the multi-get cells compare like with like.
    keys = ["bench:m%d" % i for i in range(MULTI)]
    single.set(key, VALUE)
    for k in keys:
        multi.set(k, VALUE)
    if single.get(key) != VALUE:
        raise SystemExit("%s: get did not return the value just set" % tag)
    got = get_multi(keys)
    if len(got) != MULTI:
        raise SystemExit("%s: get_multi found %d of %d keys" % (tag, len(got), MULTI))
    return {
        "get": rate(lambda: single.get(key), duration),
        "set": rate(lambda: single.set(key, VALUE), duration),
        "get_multi": rate(lambda: get_multi(keys), duration, MULTI),
    }


def with_pylibmc(servers, duration):
    import pylibmc

    def client(addrs):
        return pylibmc.Client(
            addrs, binary=False, behaviors={"tcp_nodelay": True, "ketama": True}
        )

    single, multi = client(servers[:1]), client(servers)
    return measure(single, multi, multi.get_multi, duration, "pylibmc")


def with_pymemcache(servers, duration):
    from pymemcache.client.base import Client
    from pymemcache.client.hash import HashClient

    def hostport(addr):
        host, port = addr.rsplit(":", 1)
        return (host, int(port))

    # pymemcache defaults to noreply sets; a set here waits for STORED like the others.
    opts = {"no_delay": True, "default_noreply": False}
    single = Client(hostport(servers[0]), **opts)
    multi = HashClient([hostport(s) for s in servers], **opts)
    return measure(single, multi, multi.get_many, duration, "pymemcache")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", required=True, help="host:port,host:port,...")
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per cell")
    args = parser.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers:
        parser.error("--servers names no server")

    out = {"python": sys.version.split()[0], "missing": []}
    for name, run in (("pylibmc", with_pylibmc), ("pymemcache", with_pymemcache)):
        try:
            out[name] = run(servers, args.duration)
        except ImportError as e:
            out["missing"].append("%s (%s)" % (name, e))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
