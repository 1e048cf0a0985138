//! Key placement proven against the real Python clients (pylibmc, pymemcache,
//! python-memcached), over thousands of keys, with weights, IPv6 and Unix socket names.
//! `tests/py/placement.py` asks each client where keys go without any network traffic.
//! `.ci/run` installs the clients; set `LARDER_SKIP_PYTHON=1` to skip on a machine without
//! them (the test fails loudly otherwise, so CI cannot pass without the proof).
#![cfg(feature = "memcached")]

use std::io::Write;
use std::process::{Command, Stdio};

use larder::memcache::ring::{Distribution, KeyHash, Ring};
use serde_json::{json, Value};

fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..2500).map(|i| format!("user:{i}")).collect();
    keys.extend((0..500).map(|i| format!("ключ-{i}-ü")));
    keys.extend((0..200).map(|i| format!("k{}", "x".repeat(i % 240))));
    keys
}

fn oracle(mut req: Value, keys: &[String]) -> Option<Vec<Option<usize>>> {
    if std::env::var_os("LARDER_SKIP_PYTHON").is_some() {
        return None;
    }
    req["keys"] = json!(keys);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/placement.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "placement oracle failed (are pylibmc, pymemcache, python-memcached installed? \
         .ci/run installs them):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn check(req: Value, ring: &Ring) {
    let keys = keys();
    let Some(want) = oracle(req.clone(), &keys) else {
        return;
    };
    let mut wrong = Vec::new();
    for (key, want) in keys.iter().zip(&want) {
        let got = ring.server_for(key.as_bytes());
        if got != *want {
            wrong.push(format!("{key}: larder {got:?}, python {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} keys placed differently for {req}: {:?}",
        wrong.len(),
        keys.len(),
        &wrong[..wrong.len().min(5)]
    );
}

fn ring(specs: &[&str], dist: Distribution, hash: KeyHash) -> Ring {
    Ring::from_specs(specs, dist, hash).unwrap()
}

const TCP: [&str; 4] = [
    "10.0.0.1:11211",
    "10.0.0.2:11211",
    "cache-3.internal:11212",
    "127.0.0.1:22122",
];

#[test]
fn pylibmc_modula_each_hash() {
    for (name, hash) in [
        ("default", KeyHash::OneAtATime),
        ("md5", KeyHash::Md5),
        ("crc", KeyHash::Crc),
    ] {
        let behaviors = if name == "default" {
            json!({})
        } else {
            json!({ "hash": name })
        };
        check(
            json!({"client": "pylibmc", "servers": TCP, "behaviors": behaviors}),
            &ring(&TCP, Distribution::Modula, hash),
        );
    }
}

#[test]
fn pylibmc_ketama_each_hash() {
    check(
        json!({"client": "pylibmc", "servers": TCP, "behaviors": {"ketama": true}}),
        &ring(&TCP, Distribution::Ketama, KeyHash::OneAtATime),
    );
    check(
        json!({"client": "pylibmc", "servers": TCP, "behaviors": {"ketama": true, "hash": "md5"}}),
        &ring(&TCP, Distribution::Ketama, KeyHash::Md5),
    );
}

#[test]
fn pylibmc_ketama_weighted_and_the_silent_switch() {
    let weighted = ["10.0.0.1:11211:1", "10.0.0.2:11211:3", "10.0.0.3:11300:2"];
    check(
        json!({"client": "pylibmc", "servers": weighted, "behaviors": {"ketama_weighted": true}}),
        &ring(&weighted, Distribution::KetamaWeighted, KeyHash::OneAtATime),
    );
    // Unweighted ketama with a weight above 1: libmemcached builds the weighted continuum
    // but keeps the configured key hash.
    check(
        json!({"client": "pylibmc", "servers": weighted, "behaviors": {"ketama": true}}),
        &ring(&weighted, Distribution::Ketama, KeyHash::OneAtATime),
    );
    let equal = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];
    check(
        json!({"client": "pylibmc", "servers": equal, "behaviors": {"ketama_weighted": true}}),
        &ring(&equal, Distribution::KetamaWeighted, KeyHash::OneAtATime),
    );
}

#[test]
fn pylibmc_ipv6_and_unix_sockets() {
    let v6 = ["[::1]:11211", "[::1]:11212", "[fe80::1]:11213"];
    check(
        json!({"client": "pylibmc", "servers": v6, "behaviors": {"ketama": true}}),
        &ring(&v6, Distribution::Ketama, KeyHash::OneAtATime),
    );
    let unix = [
        "/tmp/mc-a.sock",
        "/tmp/mc-b.sock",
        "/var/run/memcached/c.sock",
    ];
    check(
        json!({"client": "pylibmc", "servers": unix, "behaviors": {"ketama": true}}),
        &ring(&unix, Distribution::Ketama, KeyHash::OneAtATime),
    );
    check(
        json!({"client": "pylibmc", "servers": unix, "behaviors": {}}),
        &ring(&unix, Distribution::Modula, KeyHash::OneAtATime),
    );
}

#[test]
fn pymemcache_rendezvous_tcp_ipv6_unix() {
    let py = [
        "127.0.0.1:11211",
        "127.0.0.1:11212",
        "::1:11213",
        "cache-4:11211",
    ];
    let rust = [
        "127.0.0.1:11211",
        "127.0.0.1:11212",
        "[::1]:11213",
        "cache-4:11211",
    ];
    check(
        json!({"client": "pymemcache", "servers": py}),
        &ring(&rust, Distribution::Rendezvous, KeyHash::OneAtATime),
    );
    let unix = ["/tmp/mc-a.sock", "/tmp/mc-b.sock"];
    check(
        json!({"client": "pymemcache", "servers": unix}),
        &ring(&unix, Distribution::Rendezvous, KeyHash::OneAtATime),
    );
}

#[test]
fn python_memcached_weights_and_dead_server_rehash() {
    let specs = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];
    let weighted = ["10.0.0.1:11211:1", "10.0.0.2:11211:3", "10.0.0.3:11211:2"];
    let full = ring(&weighted, Distribution::PythonMemcached, KeyHash::Crc);
    check(
        json!({"client": "python-memcached", "servers": specs, "weights": [1, 3, 2]}),
        &full,
    );
    check(
        json!({"client": "python-memcached", "servers": specs, "weights": [1, 3, 2], "dead": [1]}),
        &full.without(&[true, false, true]),
    );
    check(
        json!({"client": "python-memcached", "servers": specs, "weights": [1, 3, 2], "dead": [0, 2]}),
        &full.without(&[false, true, false]),
    );
}
