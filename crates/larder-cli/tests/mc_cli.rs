//! The `larder` binary's memcached tools against a memcached started for the test.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use larder_testing::memcached::MemcachedServer;

fn larder(server: &MemcachedServer, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .args(["--servers", server.addr()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn get_set_and_friends() {
    let server = MemcachedServer::start().unwrap();
    let out = larder(&server, &["set", "greeting", "hello world"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Exact bytes from stdin, printed as base64 because they are not plain text.
    let out = larder(&server, &["set", "bin", "--ttl", "60"], Some(b"a\r\n\0b"));
    assert_eq!(out.status.code(), Some(0));
    let out = larder(&server, &["set", "n", "41", "--flags", "4"], None);
    assert_eq!(out.status.code(), Some(0));

    let out = larder(&server, &["get", "greeting", "bin", "n", "missing"], None);
    assert_eq!(out.status.code(), Some(1), "a key missed");
    assert_eq!(
        text(&out.stdout),
        "greeting\thello world\nbin\tbase64:YQ0KAGI=\nn\t41\n"
    );
    assert!(text(&out.stderr).contains("missing"));

    let out = larder(&server, &["incr", "n", "2"], None);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "43\n".into())
    );
    let out = larder(&server, &["decr", "n"], None);
    assert_eq!(text(&out.stdout), "42\n");
    let out = larder(&server, &["incr", "absent"], None);
    assert_eq!(out.status.code(), Some(1));

    let out = larder(&server, &["add", "greeting", "x"], None);
    assert_eq!(out.status.code(), Some(1), "already present");
    let out = larder(&server, &["add", "fresh", "x"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = larder(&server, &["touch", "fresh", "--ttl", "100"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = larder(&server, &["delete", "fresh"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = larder(&server, &["delete", "fresh"], None);
    assert_eq!(out.status.code(), Some(1));

    let out = larder(&server, &["stats"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&format!("{}\tcurr_items\t", server.addr())));

    let out = larder(&server, &["flush"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = larder(&server, &["get", "greeting"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn errors_are_one_line_with_exit_code_two() {
    let server = MemcachedServer::start().unwrap();
    let out = larder(&server, &["get", &"k".repeat(300)], None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("larder: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Nothing listens on a port we just released.
    let port = larder_testing::memcached::free_port().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["get", "k", "--servers", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("larder: error: "));
}

fn run_larder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cluster_flags_place_keys_like_larder_ring_and_stats_show_server_state() {
    let a = MemcachedServer::start().unwrap();
    let b = MemcachedServer::start().unwrap();
    let down = format!(
        "127.0.0.1:{}",
        larder_testing::memcached::free_port().unwrap()
    );
    let servers = format!("{},{}:3", a.addr(), b.addr());
    let flags = ["--distribution", "modula", "--hash", "crc"];
    for key in ["alpha", "beta", "gamma", "delta"] {
        let mut args = vec!["set", key, "v", "--servers", &servers];
        args.extend(flags);
        assert_eq!(run_larder(&args).status.code(), Some(0));
        let mut args = vec!["ring", key, "--servers", &servers];
        args.extend(flags);
        let placed = text(&run_larder(&args).stdout);
        let home = placed.trim().split('\t').nth(1).unwrap().to_owned();
        // Only the server the ring names holds it.
        for server in [a.addr(), b.addr()] {
            let out = run_larder(&["get", key, "--servers", server]);
            assert_eq!(out.status.code() == Some(0), server == home, "{key}");
        }
    }

    // stats: per-server state; a server that is down is reported, the others answer.
    let with_down = format!("{},{down}", a.addr());
    let out = run_larder(&["stats", "--servers", &with_down]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("{}\tlarder:state\talive", a.addr())));
    assert!(
        stdout.contains(&format!("{down}\tlarder:error\t")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{down}\tlarder:total_failures\t1")));
}

#[test]
fn stats_against_redis() {
    let redis = larder_testing::redis::RedisServer::start().unwrap();
    let url = redis.url();
    let out = run_larder(&["stats", "--redis", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let version = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{url}\tredis_version\t")))
        .unwrap_or_else(|| panic!("no redis_version line in {stdout}"));
    assert!(version.split('\t').nth(2).is_some_and(|v| !v.is_empty()));
    assert!(stdout.contains(&format!("{url}\tlarder:prefix\tlarder:")));

    let down = run_larder(&["stats", "--redis", "redis://127.0.0.1:1"]);
    assert_eq!(down.status.code(), Some(2));
    assert_eq!(
        text(&down.stderr).lines().count(),
        1,
        "{}",
        text(&down.stderr)
    );
}
