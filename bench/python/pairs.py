#!/usr/bin/env python3
"""1-thread get, set and 100-key get_multi, larder against pylibmc, measured in pairs.

`vs_pylibmc.py` times each contender for 0.2 s in turn; a 1-thread round trip there
depends on where the scheduler puts the client against the server, and its ratios spread
by ±20 % and more. Here one thread alternates short blocks of calls between the two
clients (each first every other pair), so both see the same placement from moment to
moment, and the median of the per-pair ratios is stable to a few points from run to run.
get and set run on one memcached with one worker thread; get_multi, as in
`vs_pylibmc.py`, on three (ketama on both clients, so each key lands on the same server). It prints, per operation, larder's speed over pylibmc's:
the median and quartiles of the pairs.

Needs the `larder` package, pylibmc and memcached on PATH (see bench/README.md).

    python3 bench/python/pairs.py [--block 100] [--pairs 600]
"""

import argparse
import statistics
import time

import larder
import pylibmc

from vs_pylibmc import Memcached

VALUE = b"v" * 100


def timed(call, block):
    t0 = time.perf_counter()
    for _ in range(block):
        call()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=100,
                    help="calls per contender and pair (a fifth of it for get_multi)")
    ap.add_argument("--pairs", type=int, default=600)
    args = ap.parse_args()
    servers = [Memcached(threads=1) for _ in range(3)]
    try:
        def clients(addrs):
            behaviors = {"tcp_nodelay": True, "ketama": True}
            return {
                name: module.Client(addrs, behaviors=behaviors)
                for name, module in (("larder", larder), ("pylibmc", pylibmc))
            }

        one = clients([servers[0].addr])
        three = clients([s.addr for s in servers])
        keys = ["bench:%d" % i for i in range(100)]
        for mc in one.values():
            mc.set("bench:key", VALUE)
        for mc in three.values():
            mc.set_multi({k: VALUE for k in keys})
        ops = {
            "get": (one, lambda mc: (lambda: mc.get("bench:key"))),
            "set": (one, lambda mc: (lambda: mc.set("bench:key", VALUE))),
            "get_multi": (three, lambda mc: (lambda: mc.get_multi(keys))),
        }
        for op, (pair, bind) in ops.items():
            calls = {name: bind(mc) for name, mc in pair.items()}
            block = args.block if op != "get_multi" else max(1, args.block // 5)
            for call in calls.values():
                timed(call, block)  # warm-up
            ratios = []
            for p in range(args.pairs):
                order = ["larder", "pylibmc"] if p % 2 == 0 else ["pylibmc", "larder"]
                took = {name: timed(calls[name], block) for name in order}
                ratios.append(took["pylibmc"] / took["larder"])
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            print("%s: larder/pylibmc speed %.3f (quartiles %.3f-%.3f), %d pairs of %d calls"
                  % (op, statistics.median(ratios), q1, q3, args.pairs, block))
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
