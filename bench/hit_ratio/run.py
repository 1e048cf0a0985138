#!/usr/bin/env python3
"""The hit-ratio suite: larder's MemoryCache against libCacheSim's reference policies.

Generates every trace from a fixed seed, writes it once in libCacheSim's oracleGeneral format,
replays it through MemoryCache's default configuration (the Rust replayer
`hit_ratio_replay`, as a look-aside cache: get, and set on a miss) and through libCacheSim's
LRU, ARC, S3-FIFO, W-TinyLFU, Sieve and Belady on the same file, then prints one markdown
table per unit (entries: hit ratio; bytes: byte hit ratio, sizes drawn from a heavy-tailed
distribution). See bench/README.md.

    python3 bench/hit_ratio/run.py [--requests N] [--only SUBSTRING] [--unit entries|bytes]
                                   [--dir DIR] [--workers N]
"""

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import libcachesim as lcs
except ImportError:  # pragma: no cover - a message, not a test
    sys.exit("libcachesim is missing: pip install libcachesim==0.3.5")

OBJECTS = 100_000
RECORD = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
REFERENCES = [
    ("LRU", lcs.LRU),
    ("ARC", lcs.ARC),
    ("S3-FIFO", lcs.S3FIFO),
    ("W-TinyLFU", lcs.WTinyLFU),
    ("Sieve", lcs.Sieve),
]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def zipf_sampler(rng, n, s):
    """Draws ranks 0..n-1 of a bounded Zipf(s) distribution, mapped to shuffled ids."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ids = rng.permutation(n)

    def draw(count):
        ranks = np.searchsorted(cdf, rng.random(count), side="right")
        return ids[np.minimum(ranks, n - 1)]

    return draw


def zipf(seed, s, requests):
    rng = np.random.default_rng(seed)
    return zipf_sampler(rng, OBJECTS, s)(requests)


def zipf_with_scans(seed, requests, every=100_000, scan=20_000):
    """Zipf 0.9, and every `every` requests a scan of `scan` objects never seen again."""
    rng = np.random.default_rng(seed)
    draw = zipf_sampler(rng, OBJECTS, 0.9)
    parts, fresh, total = [], OBJECTS, 0
    while total < requests:
        parts.append(draw(min(every, requests - total)))
        total += len(parts[-1])
        n = min(scan, requests - total)
        parts.append(np.arange(fresh, fresh + n))
        fresh += n
        total += n
    return np.concatenate(parts)[:requests]


def loop(length, requests):
    """The objects 0..length-1 requested in order, over and over."""
    return np.arange(requests) % length


def moving_hot_set(seed, requests, region=20_000, phase=100_000):
    """Zipf 0.9 over a region of `region` objects that moves to fresh objects every `phase`."""
    rng = np.random.default_rng(seed)
    draw = zipf_sampler(rng, region, 0.9)
    parts = []
    for start in range(0, requests, phase):
        n = min(phase, requests - start)
        base = (start // phase) * region
        parts.append(draw(n) + base)
    return np.concatenate(parts)


def two_tenants(seed, requests):
    """Tenant A (Zipf 1.1 over 20% of the objects) and B (Zipf 0.6 over the rest), 50/50."""
    rng = np.random.default_rng(seed)
    a_n = OBJECTS // 5
    a = zipf_sampler(rng, a_n, 1.1)(requests)
    b = zipf_sampler(rng, OBJECTS - a_n, 0.6)(requests) + a_n
    return np.where(rng.random(requests) < 0.5, a, b)


def sizes_for(ids, seed):
    """A heavy-tailed size per object: 100 bytes times 1 + Lomax(1.2), at most 256 KiB."""
    rng = np.random.default_rng(seed)
    # One table for every trace, so an object's size never depends on the trace.
    top = max(int(ids.max()) + 1, 1 << 20)
    per_object = np.minimum(100 * (1 + rng.pareto(1.2, top)), 256 * 1024).astype(np.uint32)
    return per_object[ids]


def write_trace(path, ids, sizes):
    n = len(ids)
    order = np.lexsort((np.arange(n), ids))
    next_access = np.full(n, -1, dtype=np.int64)
    same = ids[order[1:]] == ids[order[:-1]]
    next_access[order[:-1][same]] = order[1:][same]
    records = np.zeros(n, dtype=RECORD)
    records["t"] = np.arange(n)
    records["id"] = ids
    records["size"] = sizes
    records["next"] = next_access
    records.tofile(path)


def workloads(requests):
    """(name, make ids, universe, capacities as fractions of the universe).

    The universe is the objects 0..universe-1 (100k for most traces); a capacity is a
    fraction of their count, or of their bytes in the weighted variant.
    """
    fractions = [0.01, 0.10]
    out = []
    for i, s in enumerate([0.6, 0.8, 0.9, 1.0, 1.2]):
        out.append((f"zipf {s}", lambda s=s, i=i: zipf(100 + i, s, requests), OBJECTS, fractions))
    out.append(("zipf 0.9 + scans", lambda: zipf_with_scans(200, requests), OBJECTS, fractions))
    # A loop just over the capacity: its own trace per capacity.
    for objects in (1_100, 11_000):
        out.append((f"loop {objects}", lambda o=objects: loop(o, requests), objects, [1 / 1.1]))
    out.append(("moving hot set", lambda: moving_hot_set(300, requests), OBJECTS, fractions))
    out.append(("two tenants", lambda: two_tenants(400, requests), OBJECTS, fractions))
    return out


def reference_ratios(job):
    """Every reference policy (and Belady) on one trace at one capacity."""
    path, capacity = job
    out = {}
    for name, policy in REFERENCES + [("Belady", lcs.Belady)]:
        reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
        miss, byte_miss = policy(capacity).process_trace(reader)
        out[name] = (1 - miss, 1 - byte_miss)
    return out


def replay_larder(jobs):
    with tempfile.NamedTemporaryFile("w", suffix=".jobs", delete=False) as f:
        for path, capacity, unit in jobs:
            f.write(f"{path} {capacity} {unit}\n")
        jobs_file = f.name
    cmd = ["cargo", "run", "--release", "-q", "-p", "larder-bench", "--bin",
           "hit_ratio_replay", "--", jobs_file]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"hit_ratio_replay failed:\n{done.stderr}")
    os.unlink(jobs_file)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--only", default="", help="run workloads whose name contains this")
    ap.add_argument("--unit", choices=["entries", "bytes", "both"], default="both")
    ap.add_argument("--dir", default=None,
                    help="keep the traces and the references' results here for reruns "
                         "(default: a temp dir)")
    ap.add_argument("--workers", type=int, default=2, help="processes for the references")
    args = ap.parse_args()
    units = ["entries", "bytes"] if args.unit == "both" else [args.unit]
    tmp = args.dir or tempfile.mkdtemp(prefix="larder-hit-ratio-")
    os.makedirs(tmp, exist_ok=True)
    started = time.time()

    rows = []  # (unit, name, capacity, path)
    for name, make, universe, fractions in workloads(args.requests):
        if args.only not in name:
            continue
        slug = name.replace(" ", "_").replace("+", "").replace(".", "")
        ids = None
        for unit in units:
            path = os.path.join(tmp, f"{slug}.{unit}.{args.requests}.oracleGeneral")
            if unit == "entries":
                total = universe
            else:
                per_object = sizes_for(np.arange(universe), 500)
                total = int(per_object.astype(np.uint64).sum())
            if not os.path.exists(path):
                if ids is None:
                    ids = np.asarray(make(), dtype=np.uint64)
                if unit == "entries":
                    sizes = np.ones(len(ids), dtype=np.uint32)
                else:
                    sizes = sizes_for(ids.astype(np.int64), 500)
                write_trace(path, ids, sizes)
            for fraction in fractions:
                rows.append((unit, name, max(1, int(round(total * fraction))), path))

    saved = os.path.join(tmp, "references.json")
    known = json.load(open(saved)) if os.path.exists(saved) else {}
    todo = sorted({(path, cap) for _, _, cap, path in rows if f"{path} {cap}" not in known})
    with multiprocessing.Pool(max(1, args.workers)) as pool:
        for job, result in zip(todo, pool.map(reference_ratios, todo)):
            known[f"{job[0]} {job[1]}"] = result
    with open(saved, "w") as f:
        json.dump(known, f)
    larder = replay_larder([(path, cap, unit) for unit, _, cap, path in rows])
    all_met = 0
    for unit in units:
        metric = "hit ratio" if unit == "entries" else "byte hit ratio"
        k = 0 if unit == "entries" else 1
        print(f"\n{metric} ({unit}; {args.requests} requests; larder = MemoryCache default "
              f"config; gap = larder - best reference, in points)\n")
        names = [n for n, _ in REFERENCES]
        print("| trace | capacity | shards | larder | " + " | ".join(names)
              + " | best | gap | Belady |")
        print("|---|---:|---:|---:|" + "---:|" * len(names) + "---|---:|---:|")
        for (u, name, cap, path), mine in zip(rows, larder):
            if u != unit:
                continue
            refs = known[f"{path} {cap}"]
            ours = mine["hits"] / mine["requests"] if k == 0 else mine["bytes_hit"] / mine["bytes"]
            best_name = max(names, key=lambda n: refs[n][k])
            best = refs[best_name][k]
            met = ours >= best - 0.005 and ours >= refs["S3-FIFO"][k]
            all_met += met
            cells = " | ".join(f"{refs[n][k]:.4f}" for n in names)
            print(f"| {name} | {cap} | {mine['shards']} | **{ours:.4f}** | {cells} | {best_name} "
                  f"| {100 * (ours - best):+.2f}{'' if met else ' ✗'} | {refs['Belady'][k]:.4f} |")
            sys.stdout.flush()
    print(f"\ntarget (>= best - 0.5 points and >= S3-FIFO) met on {all_met} of {len(rows)} rows; "
          f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
