#!/usr/bin/env python3
"""larder's Python package against pylibmc 1.6.3 and pymemcache 4.0.0, in one run.

Starts three local memcached servers (free 127.0.0.1 ports, stopped at the end) and measures,
from 1 thread and from `--threads` (8) threads:

- get: single gets of 100-byte values (keys spread over the three servers)
- set: single sets of 100-byte values (the same spread)
- get_multi: 100-key multi-gets, the keys spread over the three servers

Contenders, with the same behaviors where they have them (tcp_nodelay and ketama on both
larder and pylibmc, so their keys land on the same servers):

- larder: one `larder.Client`, shared by all the threads;
- pylibmc: one `pylibmc.Client` from 1 thread; its `ThreadMappedPool` from many (one clone
  per thread), each operation in its own `with pool.reserve() as mc:`, as pylibmc's docs
  show it (`--reserve-per-batch`: one reserve per 8 operations);
- pymemcache: `HashClient` over the three servers (its default rendezvous hashing: it has
  no ketama, so its keys land elsewhere), `use_pooling=True` from many threads.

Contenders take turns: each round runs every cell for every contender, one after the
other (larder and pylibmc always next to each other, each first every other round), each
turn after a short unmeasured warm-up. A cell reports the median ops/s over the rounds,
the ratio larder/pylibmc of each round (median, min–max), and the calling process's CPU
time per operation (`time.process_time_ns()`, user and system from `resource.getrusage`):
on a small machine the servers share the client's cores, so wall time depends on where
the scheduler puts them; the client's CPU time depends on it less.

Needs the `larder` package (see bench/README.md), pylibmc and pymemcache (a missing one is
skipped with a note) and memcached on PATH. Installs nothing.

    python3 bench/python/vs_pylibmc.py [--rounds 15] [--secs 0.2] [--threads 8] [--cpus 1]
                                       [--reserve-per-batch] [--json out.json]
"""

import argparse
import json
import os
import queue
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

VALUE = b"v" * 100
MULTI = 100
# Keys per thread for get and set: each thread walks its own keys, a batch at a time, and
# looks at the clock once per batch.
BATCH = 8
WARMUP_SECS = 0.05
WORKLOADS = ("get", "set", "get_multi")
# The targets: larder/pylibmc median ratio, by (workload, many threads?).
TARGETS = {
    ("get", False): 1.0,
    ("set", False): 1.0,
    ("get_multi", False): 1.3,
    ("get", True): 1.5,
    ("set", True): 1.5,
    ("get_multi", True): 1.5,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Memcached:
    """One memcached process on a free local port."""

    def __init__(self, threads):
        exe = shutil.which("memcached")
        if exe is None:
            raise SystemExit("memcached is not on PATH")
        self.port = free_port()
        args = [exe, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
        args += ["-t", str(threads)]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("memcached exited: %s" % self.proc.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("memcached on port %d did not start" % self.port)
                time.sleep(0.01)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Crew:
    """Threads kept for the whole run, so per-thread clients (pylibmc's pool) stay open."""

    def __init__(self, n):
        self.n = n
        self.inboxes = [queue.SimpleQueue() for _ in range(n)]
        self.results = queue.SimpleQueue()
        for inbox in self.inboxes:
            threading.Thread(target=self._serve, args=(inbox,), daemon=True).start()

    def _serve(self, inbox):
        while True:
            job = inbox.get()
            if job is None:
                return
            try:
                self.results.put((True, job()))
            except BaseException as e:  # handed to the caller, raised there
                self.results.put((False, e))

    def run(self, jobs):
        for inbox, job in zip(self.inboxes, jobs):
            inbox.put(job)
        out = [self.results.get() for _ in jobs]
        for ok, value in out:
            if not ok:
                raise value
        return [value for _, value in out]

    def stop(self):
        for inbox in self.inboxes:
            inbox.put(None)


def process_cpu():
    """(total, user, system) CPU ns of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (time.process_time_ns(), round(ru.ru_utime * 1e9), round(ru.ru_stime * 1e9))


def thread_keys(t):
    return ["bench:k%d:%d" % (t, j) for j in range(BATCH)]


MULTI_KEYS = ["bench:m%d" % i for i in range(MULTI)]


def batches(workload, keys):
    """batch(mc) -> operations made: one pass of `workload` over `keys` with client `mc`."""
    if workload == "get_multi":

        def batch(mc):
            got = mc.get_multi(MULTI_KEYS)
            if len(got) != MULTI:
                raise RuntimeError("get_multi found %d of %d keys" % (len(got), MULTI))
            return 1

    elif workload == "get":

        def batch(mc):
            get = mc.get
            for k in keys:
                get(k)
            return len(keys)

    else:

        def batch(mc):
            set_ = mc.set
            for k in keys:
                set_(k, VALUE)
            return len(keys)

    return batch


def reserved_batches(workload, keys, reserve):
    """As `batches`, each operation in its own `with reserve() as mc:` (pylibmc's pools)."""
    if workload == "get_multi":
        inner = batches(workload, keys)

        def batch(_):
            with reserve() as mc:
                return inner(mc)

    elif workload == "get":

        def batch(_):
            for k in keys:
                with reserve() as mc:
                    mc.get(k)
            return len(keys)

    else:

        def batch(_):
            for k in keys:
                with reserve() as mc:
                    mc.set(k, VALUE)
            return len(keys)

    return batch


def loops(workload, client, reserve=None, reserve_per_op=True):
    """make(t) -> run(deadline) -> operations, for thread t; `reserve` lends a client."""

    def make(t):
        keys = thread_keys(t)
        clock = time.perf_counter
        if reserve is None:
            batch = batches(workload, keys)
        elif reserve_per_op:
            batch = reserved_batches(workload, keys, reserve)
        else:
            inner = batches(workload, keys)

            def batch(_):
                with reserve() as mc:
                    return inner(mc)

        def run(deadline):
            n = 0
            while True:
                n += batch(client)
                if clock() >= deadline:
                    return n

        return run

    return make


def measure(crew, threads, make, secs):
    """ops/s and CPU ns per op of `threads` threads running make(t) for `secs` seconds."""
    clock = {}

    def start():
        clock["cpu0"] = process_cpu()
        clock["wall0"] = time.perf_counter()
        clock["deadline"] = clock["wall0"] + secs

    def stop():
        clock["wall1"] = time.perf_counter()
        clock["cpu1"] = process_cpu()

    begin = threading.Barrier(threads, action=start)
    end = threading.Barrier(threads, action=stop)

    def job(t):
        run = make(t)

        def go():
            run(time.perf_counter() + WARMUP_SECS)
            begin.wait()
            n = run(clock["deadline"])
            end.wait()
            return n

        return go

    ops = sum(crew.run([job(t) for t in range(threads)]))
    wall = clock["wall1"] - clock["wall0"]
    cpu = [b - a for a, b in zip(clock["cpu0"], clock["cpu1"])]
    return {
        "ops": ops,
        "ops_s": ops / wall,
        "cpu_ns_op": cpu[0] / ops,
        "user_ns_op": cpu[1] / ops,
        "sys_ns_op": cpu[2] / ops,
    }


def contenders(addrs, threads, reserve_per_op):
    """name -> (stock(keys), {threads: per-workload loop makers}) for the installed clients."""
    out, missing = {}, []
    import larder

    mc = larder.Client(addrs, behaviors={"tcp_nodelay": True, "ketama": True})
    one = {w: loops(w, mc) for w in WORKLOADS}
    out["larder"] = (mc, {1: one, threads: one})
    try:
        import pylibmc
    except ImportError as e:
        missing.append("pylibmc (%s)" % e)
    else:
        mc = pylibmc.Client(addrs, binary=False, behaviors={"tcp_nodelay": True, "ketama": True})
        pool = pylibmc.ThreadMappedPool(mc)
        out["pylibmc"] = (
            mc,
            {
                1: {w: loops(w, mc) for w in WORKLOADS},
                threads: {w: loops(w, None, pool.reserve, reserve_per_op) for w in WORKLOADS},
            },
        )
    try:
        from pymemcache.client.hash import HashClient
    except ImportError as e:
        missing.append("pymemcache (%s)" % e)
    else:
        hosts = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in addrs]
        # pymemcache defaults to noreply sets; here a set waits for STORED like the others.
        opts = {"no_delay": True, "default_noreply": False}
        single = HashClient(hosts, **opts)
        pooled = HashClient(hosts, use_pooling=True, **opts)
        out["pymemcache"] = (
            single,
            {
                1: {w: loops(w, _Pymemcache(single)) for w in WORKLOADS},
                threads: {w: loops(w, _Pymemcache(pooled)) for w in WORKLOADS},
            },
        )
    return out, missing


class _Pymemcache:
    """pymemcache's HashClient under the other clients' method names."""

    def __init__(self, mc):
        self.get, self.set, self.get_multi = mc.get, mc.set, mc.get_many


def stock(clients, threads):
    """Stores every key through each client; checks larder and pylibmc place keys alike."""
    keys = [k for t in range(threads) for k in thread_keys(t)] + MULTI_KEYS
    for name, (mc, _) in clients.items():
        if name == "pylibmc":
            # Read larder's items: found only where both put each key on the same server.
            got = mc.get_multi(keys)
            if len(got) != len(keys) or any(v != VALUE for v in got.values()):
                raise SystemExit(
                    "pylibmc found %d of %d keys larder stored: the two place keys differently"
                    % (len(got), len(keys))
                )
            continue
        setter = mc.set
        for k in keys:
            setter(k, VALUE)
        if name == "larder" and mc.get_multi(keys) != {k: VALUE for k in keys}:
            raise SystemExit("larder did not read back the keys it stored")


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def run(args):
    if args.cpus:
        # Set before the servers start, so they (and every thread) inherit it.
        os.sched_setaffinity(0, args.cpus)
    servers = [Memcached(args.memcached_threads) for _ in range(3)]
    crews = {}
    try:
        addrs = [s.addr for s in servers]
        clients, missing = contenders(addrs, args.threads, not args.reserve_per_batch)
        stock(clients, args.threads)
        counts = [1, args.threads]
        crews = {n: Crew(n) for n in counts}
        names = list(clients)
        samples = {}
        for r in range(args.rounds):
            for threads in counts:
                for w in WORKLOADS:
                    # larder and pylibmc always run one after the other, each first
                    # every other round: their ratio compares turns a moment apart.
                    order = names if r % 2 == 0 else names[::-1]
                    for name in order:
                        make = clients[name][1][threads][w]
                        got = measure(crews[threads], threads, make, args.secs)
                        samples.setdefault((w, threads, name), []).append(got)
            print("round %d of %d done" % (r + 1, args.rounds), file=sys.stderr)
    finally:
        for crew in crews.values():
            crew.stop()
        for s in servers:
            s.stop()
    return names, missing, counts, samples


def summarize(names, counts, samples):
    cells = []
    for threads in counts:
        for w in WORKLOADS:
            cell = {"workload": w, "threads": threads}
            for name in names:
                got = samples[(w, threads, name)]
                cell[name] = {
                    "ops_s": spread([g["ops_s"] for g in got]),
                    "cpu_ns_op": spread([g["cpu_ns_op"] for g in got]),
                    "user_ns_op": spread([g["user_ns_op"] for g in got]),
                    "sys_ns_op": spread([g["sys_ns_op"] for g in got]),
                }
            if "pylibmc" in names:
                pairs = list(zip(samples[(w, threads, "larder")], samples[(w, threads, "pylibmc")]))
                cell["ratio"] = spread([a["ops_s"] / b["ops_s"] for a, b in pairs])
                cell["cpu_ratio"] = spread([a["cpu_ns_op"] / b["cpu_ns_op"] for a, b in pairs])
                target = TARGETS[(w, threads > 1)]
                cell["target"] = target
                cell["met"] = cell["ratio"]["median"] >= target
            cells.append(cell)
    return cells


def table(names, cells):
    def ratio(s):
        return "%.2f (%.2f–%.2f)" % (s["median"], s["min"], s["max"])

    head = ["workload", "threads"] + ["%s ops/s" % n for n in names]
    head += ["larder/pylibmc", "target"] + ["%s CPU µs/op" % n for n in names]
    head += ["CPU larder/pylibmc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for c in cells:
        row = [c["workload"], str(c["threads"])]
        row += ["%.0f" % c[n]["ops_s"]["median"] for n in names]
        if "ratio" in c:
            verdict = "met" if c["met"] else "MISSED"
            row += [ratio(c["ratio"]), "≥ %.1f %s" % (c["target"], verdict)]
        else:
            row += ["–", "–"]
        row += ["%.1f" % (c[n]["cpu_ns_op"]["median"] / 1e3) for n in names]
        row += [ratio(c["cpu_ratio"]) if "cpu_ratio" in c else "–"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--secs", type=float, default=0.2, help="seconds per cell and round")
    parser.add_argument("--threads", type=int, default=8, help="the many-thread count")
    parser.add_argument(
        "--memcached-threads",
        type=int,
        default=1,
        help="worker threads per memcached (1: every connection served alike)",
    )
    parser.add_argument(
        "--reserve-per-batch",
        action="store_true",
        help="pylibmc's pool: one reserve() per %d gets or sets, not one per operation" % BATCH,
    )
    parser.add_argument(
        "--cpus",
        type=lambda s: {int(c) for c in s.split(",")},
        help="pin this process and the servers to these CPUs (comma-separated)",
    )
    parser.add_argument("--json", help="also write every figure (and each round's) to this file")
    args = parser.parse_args()
    if args.rounds < 1 or args.secs <= 0 or args.threads < 2:
        parser.error("needs --rounds >= 1, --secs > 0 and --threads >= 2")
    try:
        import larder
    except ImportError as e:
        raise SystemExit("the larder package is not installed (%s): see bench/README.md" % e)

    names, missing, counts, samples = run(args)
    cells = summarize(names, counts, samples)
    versions = {"python": sys.version.split()[0], "larder": larder.__version__}
    for name in ("pylibmc", "pymemcache"):
        if name in names:
            versions[name] = __import__(name).__version__
    print(
        "%s; %d rounds of %.2f s per cell; 3 memcached servers (%d worker thread(s) each); "
        "get_multi ops are calls of %d keys; CPU is this process's (user + system) per op"
        % (
            ", ".join("%s %s" % kv for kv in versions.items()),
            args.rounds,
            args.secs,
            args.memcached_threads,
            MULTI,
        )
    )
    print()
    print(table(names, cells))
    for m in missing:
        print("\nnot measured: %s" % m)
    if args.json:
        with open(args.json, "w") as f:
            rounds = [
                {"workload": w, "threads": t, "contender": n, "rounds": got}
                for (w, t, n), got in samples.items()
            ]
            opts = dict(vars(args), cpus=sorted(args.cpus or []))
            json.dump(
                {"versions": versions, "args": opts, "cells": cells, "samples": rounds},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
