#!/usr/bin/env python3
"""pylibmc's client CPU per key on 100-key multi-gets: the Python half of larder's
`cpu_per_key` bench (crates/larder-bench/benches/cpu_per_key.rs).

Given the servers (host:port, comma-separated) and the stocked keys (`--prefix` + 0..`--keys`,
every one a hit), warms up, then calls `get_multi(keys)` for `--secs` seconds and reports
the CPU the calling thread spent: user and system time from
`resource.getrusage(resource.RUSAGE_THREAD)`, the total from `time.thread_time_ns()`. The
CPU of the memcached servers is not counted. Prints one JSON object; when pylibmc is not
installed it says so under "missing" and measures nothing. Installs nothing.

    python3 bench/python/cpu_per_key.py --servers 127.0.0.1:11211,127.0.0.1:11212 [--secs 0.5]
"""

import argparse
import json
import resource
import sys
import time

WARMUP_CALLS = 200
# Check the clock every few calls so it costs little next to a call.
CHECK_EVERY = 8


def thread_cpu():
    """(user ns, system ns, total ns) of the calling thread so far."""
    ru = resource.getrusage(resource.RUSAGE_THREAD)
    return (
        round(ru.ru_utime * 1e9),
        round(ru.ru_stime * 1e9),
        time.thread_time_ns(),
    )


def measure(client, keys, value_len, secs):
    got = client.get_multi(keys)
    if len(got) != len(keys) or any(len(v) != value_len for v in got.values()):
        raise SystemExit(
            "pylibmc get_multi found %d of %d keys (or a value of the wrong size)"
            % (len(got), len(keys))
        )
    for _ in range(WARMUP_CALLS):
        client.get_multi(keys)
    get_multi = client.get_multi
    calls = 0
    start_cpu = thread_cpu()
    start = time.perf_counter()
    deadline = start + secs
    while True:
        for _ in range(CHECK_EVERY):
            get_multi(keys)
        calls += CHECK_EVERY
        now = time.perf_counter()
        if now >= deadline:
            break
    end_cpu = thread_cpu()
    return {
        "calls": calls,
        "keys": calls * len(keys),
        "wall_s": now - start,
        "user_ns": end_cpu[0] - start_cpu[0],
        "sys_ns": end_cpu[1] - start_cpu[1],
        "total_ns": end_cpu[2] - start_cpu[2],
        # Every get_multi this process made, warm-up and check included (the bench divides
        # the servers' counters by it to see how the keys were split over them).
        "calls_all": calls + WARMUP_CALLS + 1,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", required=True, help="host:port,host:port,...")
    parser.add_argument("--secs", type=float, default=0.5, help="seconds measured")
    parser.add_argument("--prefix", default="cpk:", help="key names: PREFIX0, PREFIX1, ...")
    parser.add_argument("--keys", type=int, default=100, help="keys per multi-get")
    parser.add_argument("--value-len", type=int, default=100, help="bytes of each value")
    args = parser.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers:
        parser.error("--servers names no server")

    out = {"python": sys.version.split()[0], "missing": []}
    try:
        import pylibmc
    except ImportError as e:
        out["missing"].append("pylibmc (%s)" % e)
        print(json.dumps(out))
        return
    out["pylibmc_version"] = pylibmc.__version__
    client = pylibmc.Client(
        servers, binary=False, behaviors={"ketama": True, "tcp_nodelay": True}
    )
    keys = ["%s%d" % (args.prefix, i) for i in range(args.keys)]
    out["pylibmc"] = measure(client, keys, args.value_len, args.secs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
