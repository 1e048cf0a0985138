//! Runs the `larder` binary: the demo prints its table and the cache saves lookups; bad
//! flags and unbuilt backends fail with one line and exit status 2.

use std::process::{Command, Output};

fn larder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .output()
        .expect("the larder binary runs")
}

/// A table row: the mode, then the numeric cells (requests, hit ratio %, lookups,
/// throughput, p50, p99).
fn row(stdout: &str, mode: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(mode))
        .unwrap_or_else(|| panic!("no row {mode:?} in:\n{stdout}"));
    line[mode.len()..]
        .split_whitespace()
        .map(|cell| {
            cell.trim_end_matches('%')
                .parse()
                .unwrap_or_else(|_| panic!("cell {cell:?} of {line:?} is not a number"))
        })
        .collect()
}

#[test]
fn demo_prints_a_table_where_the_cache_saves_lookups() {
    let out = larder(&[
        "demo",
        "--duration",
        "0.3",
        "--threads",
        "2",
        "--keys",
        "100",
        "--lookup-ms",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(out.status.code(), Some(0));

    let header = stdout
        .lines()
        .find(|l| l.starts_with("mode"))
        .unwrap_or_else(|| panic!("no table header in:\n{stdout}"));
    for column in [
        "requests",
        "hit ratio",
        "lookups",
        "throughput (req/s)",
        "p50",
        "p99",
    ] {
        assert!(header.contains(column), "header {header:?} lacks {column}");
    }

    let uncached = row(&stdout, "no cache");
    let cached = row(&stdout, "memory cache");
    assert_eq!(uncached.len(), 6, "{stdout}");
    assert_eq!(cached.len(), 6, "{stdout}");
    let (requests, hit_ratio, lookups) = (0, 1, 2);

    assert!(uncached[requests] > 0.0, "{stdout}");
    assert_eq!(uncached[hit_ratio], 0.0, "{stdout}");
    assert_eq!(
        uncached[lookups], uncached[requests],
        "without a cache every request looks up:\n{stdout}"
    );
    assert!(cached[requests] > 0.0, "{stdout}");
    assert!(cached[hit_ratio] > 0.0, "{stdout}");
    assert!(
        cached[lookups] < cached[requests],
        "the cached run made as many lookups as requests:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("x the throughput")),
        "no summary line in:\n{stdout}"
    );
}

fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with("larder: error: "), "stderr: {stderr:?}");
    assert!(
        stderr.contains(needle),
        "stderr {stderr:?} lacks {needle:?}"
    );
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
}

#[test]
fn a_bad_flag_value_is_one_line_and_exit_2() {
    assert_one_line_error(&larder(&["demo", "--threads", "many"]), "--threads");
    assert_one_line_error(&larder(&["demo", "--duration", "0"]), "--duration");
    assert_one_line_error(&larder(&["demo", "--no-such-flag"]), "--no-such-flag");
}

#[test]
fn every_backend_runs_against_its_server() {
    let memcached = larder_testing::memcached::MemcachedServer::start().unwrap();
    let redis = larder_testing::redis::RedisServer::start().unwrap();
    let redis_url = redis.url();
    let runs: [(&str, &[&str]); 4] = [
        ("memcached", &["--servers", memcached.addr()]),
        ("redis", &["--redis", &redis_url]),
        ("tiered", &["--redis", &redis_url]),
        ("tiered", &["--servers", memcached.addr()]),
    ];
    for (backend, server) in runs {
        let mut args = vec![
            "demo",
            "--backend",
            backend,
            "--duration",
            "0.3",
            "--threads",
            "2",
        ];
        args.extend(["--keys", "100", "--lookup-ms", "1"]);
        args.extend(server);
        let out = larder(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{backend} {server:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let label = if backend == "tiered" {
            "tiered cache"
        } else {
            "shared cache"
        };
        let cached = row(&stdout, label);
        assert!(
            cached[1] > 0.0 && cached[2] < cached[0],
            "{backend}: {stdout}"
        );

        let mut args = vec!["demo", "--scene", "stampede", "--backend", backend];
        args.extend(["--threads", "8", "--duration", "0.8"]);
        args.extend(server);
        let out = larder(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "stampede on {backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches("creator calls:").count(),
            2,
            "{backend}: {stdout}"
        );
    }
}

#[test]
fn an_unreachable_server_is_one_line_saying_how_to_start_one() {
    assert_one_line_error(
        &larder(&["demo", "--backend", "memcached", "--servers", "127.0.0.1:1"]),
        "memcached -p 11211",
    );
    assert_one_line_error(
        &larder(&[
            "demo",
            "--backend",
            "redis",
            "--redis",
            "redis://127.0.0.1:1",
        ]),
        "redis-server --port 6379",
    );
    assert_one_line_error(&larder(&["demo", "--backend", "redis"]), "--redis");
}

#[test]
fn stampede_scene_shows_the_region_running_far_fewer_creators() {
    let out = larder(&[
        "demo",
        "--scene",
        "stampede",
        "--threads",
        "16",
        "--duration",
        "1",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let calls: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.split("creator calls:").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(calls.len(), 2, "{stdout}");
    let (with_region, without) = (calls[0], calls[1]);
    assert!(with_region >= 1 && with_region * 4 <= without, "{stdout}");
    assert!(stdout.contains("verdict:"), "{stdout}");
}
