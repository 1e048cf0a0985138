//! The shared contract test suite: every [`Cache`] backend runs the same checks, so a new
//! backend gets the suite for free. Backends call [`contract_tests!`](crate::contract_tests)
//! in a test module with a function that builds a fresh [`Fixture`]; each check is also a
//! public function here, for a test that wants to run one by hand.
//!
//! Values are `String`s (every backend can store text, and decimal text is what counters
//! count on). Time moves through the fixture's `advance`, which a memory cache maps to a
//! [`ManualClock`](larder::clock::ManualClock) and a server backend to a real sleep.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use larder::{Cache, Error, Expiry};

/// A fresh, empty cache under test plus the means to move its time forward.
pub struct Fixture {
    /// The cache under test.
    pub cache: Arc<dyn Cache<String>>,
    /// Moves the cache's notion of time forward (advances a manual clock, or sleeps).
    pub advance: Box<dyn Fn(Duration) + Send + Sync>,
    /// Whatever must stay alive while the cache is used (a server process, a temp dir).
    pub guard: Box<dyn Any + Send>,
}

/// The shortest TTL the suite uses; server backends count whole seconds.
pub const SHORT_TTL: Duration = Duration::from_secs(1);
/// How far the suite moves time to see a [`SHORT_TTL`] entry expire (memcached may keep an
/// entry up to a second past its TTL).
pub const PAST_SHORT_TTL: Duration = Duration::from_millis(2100);

fn s(v: &str) -> String {
    v.to_owned()
}

/// `get` misses, `set` stores, a second `set` overwrites.
pub fn get_set(f: &Fixture) {
    let c = &*f.cache;
    assert_eq!(c.get("gs:k").unwrap(), None);
    c.set("gs:k", s("v1"), Expiry::Never).unwrap();
    assert_eq!(c.get("gs:k").unwrap(), Some(s("v1")));
    c.set("gs:k", s("v2"), Expiry::Never).unwrap();
    assert_eq!(c.get("gs:k").unwrap(), Some(s("v2")));
    c.set("gs:empty", String::new(), Expiry::Never).unwrap();
    assert_eq!(c.get("gs:empty").unwrap(), Some(String::new()));
    let text = s("line one\r\nline two ünïcødé");
    c.set("gs:crlf", text.clone(), Expiry::Never).unwrap();
    assert_eq!(c.get("gs:crlf").unwrap(), Some(text));
}

/// `add` stores only when absent, `replace` only when present.
pub fn add_replace(f: &Fixture) {
    let c = &*f.cache;
    assert!(!c.replace("ar:k", s("r0"), Expiry::Never).unwrap());
    assert_eq!(c.get("ar:k").unwrap(), None);
    assert!(c.add("ar:k", s("a1"), Expiry::Never).unwrap());
    assert!(!c.add("ar:k", s("a2"), Expiry::Never).unwrap());
    assert_eq!(c.get("ar:k").unwrap(), Some(s("a1")));
    assert!(c.replace("ar:k", s("r1"), Expiry::Never).unwrap());
    assert_eq!(c.get("ar:k").unwrap(), Some(s("r1")));
}

/// `delete` removes and says whether the key was there.
pub fn delete(f: &Fixture) {
    let c = &*f.cache;
    assert!(!c.delete("del:k").unwrap());
    c.set("del:k", s("v"), Expiry::Never).unwrap();
    assert!(c.delete("del:k").unwrap());
    assert_eq!(c.get("del:k").unwrap(), None);
    assert!(!c.delete("del:k").unwrap());
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Multi-key operations return per-key outcomes.
pub fn multi(f: &Fixture) {
    let c = &*f.cache;
    let w = c
        .set_multi(vec![("m:a", s("1")), ("m:b", s("2"))], Expiry::Never)
        .unwrap();
    assert_eq!(sorted(w.applied), vec![s("m:a"), s("m:b")]);
    assert!(w.not_applied.is_empty());

    let got = c.get_multi(&["m:a", "m:b", "m:missing"]).unwrap();
    let want: HashMap<String, String> = [(s("m:a"), s("1")), (s("m:b"), s("2"))].into();
    assert_eq!(got, want);
    // A key asked twice is one entry.
    let got = c.get_multi(&["m:b", "m:a", "m:missing", "m:b"]).unwrap();
    assert_eq!(got, want);
    assert!(c.get_multi(&[]).unwrap().is_empty());

    let w = c
        .add_multi(vec![("m:a", s("x")), ("m:c", s("3"))], Expiry::Never)
        .unwrap();
    assert_eq!(w.applied, vec![s("m:c")]);
    assert_eq!(w.not_applied, vec![s("m:a")]);
    assert_eq!(c.get("m:a").unwrap(), Some(s("1")));

    let w = c
        .replace_multi(vec![("m:b", s("22")), ("m:d", s("4"))], Expiry::Never)
        .unwrap();
    assert_eq!(w.applied, vec![s("m:b")]);
    assert_eq!(w.not_applied, vec![s("m:d")]);
    assert_eq!(c.get("m:b").unwrap(), Some(s("22")));
    assert_eq!(c.get("m:d").unwrap(), None);

    let w = c.delete_multi(&["m:a", "m:d"]).unwrap();
    assert_eq!(w.applied, vec![s("m:a")]);
    assert_eq!(w.not_applied, vec![s("m:d")]);
    assert_eq!(c.get("m:a").unwrap(), None);
}

/// `incr`/`decr`: missing → `None` (nothing stored), decimal arithmetic, `decr` stops at 0,
/// a non-number is [`Error::NotANumber`].
pub fn counters(f: &Fixture) {
    let c = &*f.cache;
    assert_eq!(c.incr("ctr:k", 1).unwrap(), None);
    assert_eq!(c.decr("ctr:k", 1).unwrap(), None);
    assert_eq!(
        c.get("ctr:k").unwrap(),
        None,
        "incr on a missing key stores nothing"
    );
    c.set("ctr:k", s("10"), Expiry::Never).unwrap();
    assert_eq!(c.incr("ctr:k", 5).unwrap(), Some(15));
    assert_eq!(c.decr("ctr:k", 3).unwrap(), Some(12));
    assert_eq!(c.decr("ctr:k", 100).unwrap(), Some(0));
    assert_eq!(c.incr("ctr:k", 7).unwrap(), Some(7));
    assert_eq!(
        c.get("ctr:k").unwrap().as_deref().map(str::trim_end),
        Some("7")
    );
    c.set("ctr:text", s("ten"), Expiry::Never).unwrap();
    match c.incr("ctr:text", 1) {
        Err(Error::NotANumber { .. }) => {}
        other => panic!("incr on text gave {other:?}, want NotANumber"),
    }
    assert_eq!(c.get("ctr:text").unwrap(), Some(s("ten")));
}

/// The edges of the counter rule: a value counts only when it is a `u64` in ASCII decimal
/// (past `u64::MAX` is [`Error::NotANumber`], never wrapped); `incr` wraps at 2^64 and
/// `decr` stops at 0; a refused value is left as it was.
pub fn counter_bounds(f: &Fixture) {
    let c = &*f.cache;
    let max = u64::MAX.to_string();
    let read = |key: &str| c.get(key).unwrap().map(|v| v.trim_end().to_owned());
    for (key, stored) in [
        ("cb:2^64", "18446744073709551616"),
        ("cb:20nines", "99999999999999999999"),
        ("cb:neg", "-1"),
        ("cb:empty", ""),
        ("cb:frac", "1.5"),
        ("cb:suffix", "12a"),
    ] {
        c.set(key, s(stored), Expiry::Never).unwrap();
        for (op, got) in [("incr", c.incr(key, 1)), ("decr", c.decr(key, 1))] {
            match got {
                Err(Error::NotANumber { .. }) => {}
                other => panic!("{op} on {stored:?} gave {other:?}, want NotANumber"),
            }
        }
        assert_eq!(
            read(key).as_deref(),
            Some(stored),
            "{stored:?} left as it was"
        );
    }
    c.set("cb:max", max.clone(), Expiry::Never).unwrap();
    assert_eq!(c.decr("cb:max", 1).unwrap(), Some(u64::MAX - 1));
    assert_eq!(c.incr("cb:max", 1).unwrap(), Some(u64::MAX));
    assert_eq!(read("cb:max"), Some(max.clone()));
    assert_eq!(c.incr("cb:max", 1).unwrap(), Some(0), "wraps at 2^64");
    assert_eq!(read("cb:max").as_deref(), Some("0"));
    c.set("cb:max", max, Expiry::Never).unwrap();
    assert_eq!(c.incr("cb:max", u64::MAX).unwrap(), Some(u64::MAX - 1));
    c.set("cb:zeros", s("007"), Expiry::Never).unwrap();
    assert_eq!(c.incr("cb:zeros", 1).unwrap(), Some(8));
    assert_eq!(c.decr("cb:zeros", u64::MAX).unwrap(), Some(0));
}

/// The one key rule (a backend's default [`KeyPolicy`](larder::KeyPolicy)): 1 to 250 bytes,
/// no space or control bytes. Every operation refuses a bad key with
/// [`Error::KeyInvalid`] naming the key and the rule, and a batch holding one stores,
/// deletes and reads nothing.
pub fn key_rule(f: &Fixture) {
    use larder::KeyRule;
    let c = &*f.cache;
    let longest = "k".repeat(250);
    for key in [&*longest, "k", "ключ", "a:b|c{}~%\u{ff}"] {
        c.set(key, s("v"), Expiry::Never).unwrap();
        assert_eq!(c.get(key).unwrap(), Some(s("v")), "{key:?}");
        assert!(c.delete(key).unwrap(), "{key:?}");
    }
    let too_long = "k".repeat(251);
    let forbidden = |byte, offset| KeyRule::ForbiddenByte { byte, offset };
    let refused = [
        ("", KeyRule::Empty),
        (
            &*too_long,
            KeyRule::TooLong {
                len: 251,
                limit: 250,
            },
        ),
        ("a b", forbidden(b' ', 1)),
        ("ab\n", forbidden(b'\n', 2)),
        ("\tab", forbidden(b'\t', 0)),
        ("a\r\nb", forbidden(b'\r', 1)),
        ("a\x7fb", forbidden(0x7f, 1)),
        ("a\0b", forbidden(0, 1)),
    ];
    c.set("kr:ok", s("before"), Expiry::Never).unwrap();
    for (bad, rule) in refused {
        let check = |op: &str, got: Result<(), Error>| match got {
            Err(Error::KeyInvalid { key, rule: r }) if key == bad && r == rule => {}
            other => panic!("{op}({bad:?}) gave {other:?}, want KeyInvalid {rule:?}"),
        };
        let v = || s("v");
        let never = Expiry::Never;
        check("get", c.get(bad).map(drop));
        match c.get_with_ttl(bad) {
            // A backend without remaining-TTL reads may say so before looking at the key.
            Err(Error::Unsupported(_)) => {}
            got => check("get_with_ttl", got.map(drop)),
        }
        check("get_multi", c.get_multi(&["kr:ok", bad]).map(drop));
        check("set", c.set(bad, v(), never));
        check("add", c.add(bad, v(), never).map(drop));
        check("replace", c.replace(bad, v(), never).map(drop));
        check("delete", c.delete(bad).map(drop));
        check("incr", c.incr(bad, 1).map(drop));
        check("decr", c.decr(bad, 1).map(drop));
        check("touch", c.touch(bad, never).map(drop));
        let batch = || vec![("kr:new", v()), (bad, v())];
        check("set_multi", c.set_multi(batch(), never).map(drop));
        check("add_multi", c.add_multi(batch(), never).map(drop));
        let batch = || vec![("kr:ok", s("after")), (bad, v())];
        check("replace_multi", c.replace_multi(batch(), never).map(drop));
        check("delete_multi", c.delete_multi(&["kr:ok", bad]).map(drop));
        assert_eq!(
            c.get("kr:new").unwrap(),
            None,
            "a refused batch stores nothing"
        );
        assert_eq!(c.get("kr:ok").unwrap(), Some(s("before")), "nor deletes");
    }
    let err = c.get(&too_long).unwrap_err().to_string();
    assert!(err.contains("key too long: 251 bytes, limit 250"), "{err}");
}

/// Entries expire after their TTL and are never returned after; `Never` stays.
pub fn expiry(f: &Fixture) {
    let c = &*f.cache;
    c.set("ttl:short", s("v"), Expiry::After(SHORT_TTL))
        .unwrap();
    c.set("ttl:never", s("v"), Expiry::Never).unwrap();
    assert!(c
        .add("ttl:added", s("v"), Expiry::After(SHORT_TTL))
        .unwrap());
    assert_eq!(c.get("ttl:short").unwrap(), Some(s("v")));
    (f.advance)(PAST_SHORT_TTL);
    assert_eq!(c.get("ttl:short").unwrap(), None);
    assert_eq!(c.get("ttl:added").unwrap(), None);
    assert!(c.get_multi(&["ttl:short", "ttl:added"]).unwrap().is_empty());
    assert_eq!(c.get("ttl:never").unwrap(), Some(s("v")));
    // An expired key counts as absent for add and replace.
    assert!(!c.replace("ttl:short", s("r"), Expiry::Never).unwrap());
    assert!(c.add("ttl:short", s("a"), Expiry::Never).unwrap());
}

/// `touch` gives a new expiry to an existing key only.
pub fn touch(f: &Fixture) {
    let c = &*f.cache;
    assert!(!c.touch("t:missing", Expiry::Never).unwrap());
    c.set("t:k", s("v"), Expiry::After(SHORT_TTL)).unwrap();
    c.set("t:k2", s("v"), Expiry::Never).unwrap();
    assert!(c.touch("t:k", Expiry::Never).unwrap());
    assert!(c.touch("t:k2", Expiry::After(SHORT_TTL)).unwrap());
    (f.advance)(PAST_SHORT_TTL);
    assert_eq!(
        c.get("t:k").unwrap(),
        Some(s("v")),
        "touched to never expire"
    );
    assert_eq!(c.get("t:k2").unwrap(), None, "touched to expire");
}

/// `clear` removes everything.
pub fn clear(f: &Fixture) {
    let c = &*f.cache;
    c.set("cl:a", s("1"), Expiry::Never).unwrap();
    c.set("cl:b", s("2"), Expiry::After(Duration::from_secs(3600)))
        .unwrap();
    c.clear().unwrap();
    assert!(c.get_multi(&["cl:a", "cl:b"]).unwrap().is_empty());
    c.set("cl:a", s("3"), Expiry::Never).unwrap();
    assert_eq!(c.get("cl:a").unwrap(), Some(s("3")));
}

/// Many threads `add` the same key: exactly one wins, and its value is the one stored.
pub fn concurrent_add_one_winner(f: &Fixture) {
    const THREADS: usize = 16;
    for round in 0..10 {
        let key = format!("cadd:{round}");
        let wins = AtomicUsize::new(0);
        let winner = std::sync::Mutex::new(None);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (c, key, wins, winner) = (&f.cache, &key, &wins, &winner);
                scope.spawn(move || {
                    if c.add(key, format!("t{t}"), Expiry::Never).unwrap() {
                        wins.fetch_add(1, Ordering::SeqCst);
                        *winner.lock().unwrap() = Some(format!("t{t}"));
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
        assert_eq!(f.cache.get(&key).unwrap(), winner.into_inner().unwrap());
    }
}

/// Many threads `incr` one counter: no update is lost.
pub fn concurrent_incr_no_lost_updates(f: &Fixture) {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 250;
    f.cache.set("cincr", s("0"), Expiry::Never).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let c = &f.cache;
            scope.spawn(move || {
                for _ in 0..PER_THREAD {
                    c.incr("cincr", 1).unwrap().expect("counter present");
                }
            });
        }
    });
    assert_eq!(
        f.cache.get("cincr").unwrap().as_deref().map(str::trim_end),
        Some(&*(THREADS * PER_THREAD).to_string())
    );
}

/// Generates one `#[test]` per contract check, each on a fresh fixture from `$make`
/// (an expression of type `fn() -> Fixture`).
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            get_set, add_replace, delete, multi, counters, counter_bounds, key_rule, expiry,
            touch, clear, concurrent_add_one_winner, concurrent_incr_no_lost_updates);
    };
    (@each $make:expr; $($check:ident),*) => {$(
        #[test]
        fn $check() {
            let fixture: $crate::contract::Fixture = ($make)();
            $crate::contract::$check(&fixture);
        }
    )*};
}
