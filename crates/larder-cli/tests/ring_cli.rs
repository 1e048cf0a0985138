//! `larder ring` places keys as the Python clients do (the vectors of
//! `docs/memcached-interop.md`) and reports bad input in one line.

use std::process::Command;

fn larder(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .output()
        .expect("larder runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SERVERS: &str = "10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211";
const KEYS: [&str; 5] = ["foo", "bar", "baz", "hello", "user:42"];

fn placed(extra: &[&str]) -> Vec<String> {
    let mut args = vec!["ring"];
    args.extend(KEYS);
    args.extend(["--servers", SERVERS]);
    args.extend(extra);
    let (code, stdout, stderr) = larder(&args);
    assert_eq!(code, 0, "stderr: {stderr}");
    stdout
        .lines()
        .zip(KEYS)
        .map(|(line, key)| {
            let (k, server) = line.split_once('\t').expect("KEY<TAB>SERVER");
            assert_eq!(k, key);
            server
                .trim_start_matches("10.0.0.")
                .trim_end_matches(":11211")
                .to_string()
        })
        .collect()
}

#[test]
fn places_keys_like_the_python_clients() {
    assert_eq!(placed(&[]), ["3", "1", "2", "2", "2"]);
    assert_eq!(placed(&["--hash", "md5"]), ["2", "3", "2", "1", "3"]);
    assert_eq!(
        placed(&["--distribution", "ketama-weighted"]),
        ["2", "2", "1", "2", "1"]
    );
    assert_eq!(
        placed(&["--distribution", "modula"]),
        ["1", "2", "2", "1", "1"]
    );
    assert_eq!(
        placed(&["--distribution", "modula", "--hash", "crc"]),
        ["2", "2", "1", "2", "2"]
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        &["ring", "k", "--servers", "h:notaport"][..],
        &[
            "ring",
            "k",
            "--servers",
            "h:1",
            "--distribution",
            "round-robin",
        ][..],
    ] {
        let (code, stdout, stderr) = larder(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("larder: error: "), "{stderr}");
    }
}
