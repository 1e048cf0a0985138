#!/usr/bin/env python3
"""1-thread get and set, larder against pylibmc, measured in pairs.

`vs_pylibmc.py` times each contender for 0.2 s in turn; a 1-thread round trip there
depends on where the scheduler puts the client against the server, and its ratios spread
by ±20 % and more. Here one thread alternates short blocks of calls between the two
clients (each first every other pair) on one memcached with one worker thread, so both see
the same placement from moment to moment, and the median of the per-pair ratios is stable
to about a point from run to run. It prints, per operation, larder's speed over pylibmc's:
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
    ap.add_argument("--block", type=int, default=100, help="calls per contender and pair")
    ap.add_argument("--pairs", type=int, default=600)
    args = ap.parse_args()
    server = Memcached(threads=1)
    try:
        clients = {
            name: module.Client([server.addr], behaviors={"tcp_nodelay": True})
            for name, module in (("larder", larder), ("pylibmc", pylibmc))
        }
        for mc in clients.values():
            mc.set("bench:key", VALUE)
        ops = {
            "get": lambda mc: (lambda: mc.get("bench:key")),
            "set": lambda mc: (lambda: mc.set("bench:key", VALUE)),
        }
        for op, bind in ops.items():
            calls = {name: bind(mc) for name, mc in clients.items()}
            for call in calls.values():
                timed(call, args.block)  # warm-up
            ratios = []
            for p in range(args.pairs):
                order = ["larder", "pylibmc"] if p % 2 == 0 else ["pylibmc", "larder"]
                took = {name: timed(calls[name], args.block) for name in order}
                ratios.append(took["pylibmc"] / took["larder"])
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            print("%s: larder/pylibmc speed %.3f (quartiles %.3f-%.3f), %d pairs of %d calls"
                  % (op, statistics.median(ratios), q1, q3, args.pairs, args.block))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
