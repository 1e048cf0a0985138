//! Values shared with the Python memcached clients, both ways, on one real memcached:
//! pylibmc, python-memcached and pymemcache write, larder reads with `PyCompat`; larder
//! writes, the three Python clients read (`tests/py/values.py`). `.ci/run` installs the
//! clients; `LARDER_SKIP_PYTHON=1` skips on a machine without them.
#![cfg(all(feature = "memcached", feature = "pycompat"))]

use std::process::Command;

use larder::codec::pycompat::{IntFlag, PyCompat, PyValue};
use larder::memcache::{Client, MemcachedCache};
use larder::{Cache, Codec, Expiry};
use larder_testing::memcached::MemcachedServer;
use serde_json::Value;

fn script(args: &[&str]) -> Option<Vec<u8>> {
    if std::env::var_os("LARDER_SKIP_PYTHON").is_some() {
        return None;
    }
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/values.py"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "values.py {args:?} failed (are pylibmc, pymemcache, python-memcached installed? \
         .ci/run installs them):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

const LONG_TEXT: &str = "compress me ";

#[test]
fn larder_reads_what_each_python_client_wrote() {
    let server = MemcachedServer::start().unwrap();
    if script(&["write", server.addr()]).is_none() {
        return;
    }
    let cache = MemcachedCache::new(Client::connect(server.addr()).unwrap(), PyCompat::new());
    let get = |key: &str| {
        cache
            .get(key)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"))
    };
    let long = LONG_TEXT.repeat(200);
    for client in ["pylibmc", "pymc", "pymemcache"] {
        let k = |kind: &str| format!("{client}:{kind}");
        assert_eq!(
            get(&k("bytes")),
            PyValue::Bytes(b"\x00\xffraw\r\nbytes".to_vec()),
            "{client}"
        );
        assert_eq!(
            get(&k("str")),
            PyValue::Str("héllo wörld".into()),
            "{client}"
        );
        assert_eq!(get(&k("int")), PyValue::Int(42), "{client}");
        assert_eq!(get(&k("neg")), PyValue::Int(-7), "{client}");
        assert_eq!(
            get(&k("big")),
            PyValue::BigInt("1000000000000000000000000000000".into()),
            "{client}"
        );
        assert_eq!(get(&k("zstr")), PyValue::Str(long.clone()), "{client} zlib");
        assert!(
            matches!(get(&k("pickle")), PyValue::Pickled(_)),
            "{client} pickle is opaque"
        );
        // pylibmc stores bool as int 1; the other two pickle it.
        let want_bool_int = client == "pylibmc";
        match get(&k("bool")) {
            PyValue::Int(1) => assert!(want_bool_int, "{client}"),
            PyValue::Pickled(_) => assert!(!want_bool_int, "{client}"),
            other => panic!("{client} bool read as {other:?}"),
        }
    }
}

#[test]
fn each_python_client_reads_what_larder_wrote() {
    let server = MemcachedServer::start().unwrap();
    if script(&["write", server.addr()]).is_none() {
        return;
    }
    let client = Client::connect(server.addr()).unwrap();
    let long = MemcachedCache::new(client.clone(), PyCompat::new().compress_over(100));
    let ints = MemcachedCache::new(client.clone(), PyCompat::new().int_flag(IntFlag::Integer));
    let plain = MemcachedCache::new(client, PyCompat::new());
    // A pickle written by Python, passed through larder unchanged.
    let pickled = plain
        .get("pylibmc:pickle")
        .unwrap()
        .expect("pickle from pylibmc");
    let writes = [
        ("rust:bytes", PyValue::Bytes(vec![0, 255, b'\r', b'\n'])),
        ("rust:str", PyValue::Str("grüße".into())),
        ("rust:long", PyValue::Int(-42)),
        (
            "rust:big",
            PyValue::BigInt("123456789012345678901234567890".into()),
        ),
        ("rust:bool", PyValue::Bool(true)),
        ("rust:pickle", pickled),
    ];
    for (key, value) in writes {
        plain.set(key, value, Expiry::Never).unwrap();
    }
    ints.set("rust:int", PyValue::Int(7), Expiry::Never)
        .unwrap();
    long.set("rust:zstr", PyValue::Str("z".repeat(5000)), Expiry::Never)
        .unwrap();

    let keys = "rust:bytes,rust:str,rust:long,rust:big,rust:bool,rust:pickle,rust:int,rust:zstr";
    let out = script(&["read", server.addr(), keys]).unwrap();
    let read: Value = serde_json::from_slice(&out).unwrap();
    let z = format!("'{}'", "z".repeat(5000));
    let want: [(&str, [&str; 2]); 8] = [
        ("rust:bytes", ["bytes", r"b'\x00\xff\r\n'"]),
        ("rust:str", ["str", "'grüße'"]),
        ("rust:long", ["int", "-42"]),
        ("rust:big", ["int", "123456789012345678901234567890"]),
        ("rust:bool", ["int", "1"]),
        ("rust:pickle", ["dict", "{'a': [1, 2]}"]),
        ("rust:int", ["int", "7"]),
        ("rust:zstr", ["str", &z]),
    ];
    for client in ["pylibmc", "pymc", "pymemcache"] {
        for (key, [ty, repr]) in &want {
            let got = &read[client][key];
            assert_eq!(got[0], *ty, "{client} reading {key}: {got}");
            assert_eq!(got[1], *repr, "{client} reading {key}");
        }
    }
}

/// What each Python client makes of flags outside the ones it writes: pylibmc 1.6.3 ignores
/// bits outside its type bits and refuses two type bits together; python-memcached refuses
/// an unknown bit and reads two type bits in order, as pymemcache does. `PyCompat` refuses
/// the unknown bit and reads the combinations in that order.
#[test]
fn odd_flags_as_each_python_client_reads_them() {
    let server = MemcachedServer::start().unwrap();
    let client = Client::connect(server.addr()).unwrap();
    let stored: [(&str, &[u8], u32); 3] = [
        ("rust:flag32", b"raw", 32),
        ("rust:flag3", b"12", 3),
        ("rust:flag17", b"12", 17),
    ];
    for (key, data, flags) in stored {
        client.set(key, data, flags, Expiry::Never).unwrap();
    }
    let Some(out) = script(&["read", server.addr(), "rust:flag32,rust:flag3,rust:flag17"]) else {
        return;
    };
    let read: Value = serde_json::from_slice(&out).unwrap();
    let got = |client: &str, key: &str| read[client][key].clone();
    assert_eq!(
        got("pylibmc", "rust:flag32"),
        serde_json::json!(["bytes", "b'raw'"])
    );
    assert_eq!(got("pylibmc", "rust:flag3")[0], "error");
    assert_eq!(got("pylibmc", "rust:flag17")[0], "error");
    assert_eq!(
        got("pymemcache", "rust:flag32"),
        serde_json::json!(["bytes", "b'raw'"])
    );
    assert_eq!(got("pymc", "rust:flag32")[0], "error");
    for python in ["pymc", "pymemcache"] {
        assert_eq!(got(python, "rust:flag3"), serde_json::json!(["int", "12"]));
        assert_eq!(
            got(python, "rust:flag17"),
            serde_json::json!(["str", "'12'"])
        );
    }
    let codec = PyCompat::new();
    assert!(codec.decode(b"raw", 32).is_err());
    assert_eq!(codec.decode(b"12", 3).unwrap(), PyValue::Int(12));
    assert_eq!(codec.decode(b"12", 17).unwrap(), PyValue::Str("12".into()));
}
