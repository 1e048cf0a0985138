//! The protocol's unit tests.
use super::keys::*;
use super::meta::*;
use super::parse::*;
use super::reply::*;
use super::text::*;

use std::time::Duration;

use crate::{Error, Expiry};

fn enc(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut v = Vec::new();
    f(&mut v);
    String::from_utf8(v).unwrap()
}

#[test]
fn numbers_parse_exactly_to_the_64_bit_edge() {
    assert_eq!(parse_u64(b"0", "n").unwrap(), 0);
    assert_eq!(parse_u64(b"007", "n").unwrap(), 7);
    assert_eq!(
        parse_u64(b"9999999999999999999", "n").unwrap(),
        9_999_999_999_999_999_999
    );
    assert_eq!(parse_u64(b"18446744073709551615", "n").unwrap(), u64::MAX);
    for bad in [
        &b""[..],
        b"18446744073709551616",
        b"100000000000000000000",
        b"1x",
        b"-1",
        b" 1",
    ] {
        assert!(
            parse_u64(bad, "n").is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        number_token(b"12 rest", "n").unwrap(),
        (12, Some(&b"rest"[..]))
    );
    assert_eq!(number_token(b"12", "n").unwrap(), (12, None));
    assert_eq!(
        number_token(b"18446744073709551615 x", "n").unwrap(),
        (u64::MAX, Some(&b"x"[..]))
    );
    assert_eq!(number_token(b"5 ", "n").unwrap(), (5, Some(&b""[..])));
    assert!(number_token(b"1x 2", "n").is_err());
    assert!(number_token(b" 2", "n").is_err());
    assert_eq!(leading_digits(b"123abc"), Some((123, 3)));
    assert_eq!(leading_digits(b"12345678901234567890"), None);
    assert_eq!(leading_digits(b""), None);
}

#[test]
fn exptime_rules() {
    assert_eq!(exptime(Expiry::Never, 1_000), 0);
    assert_eq!(exptime(Expiry::After(Duration::from_millis(1)), 1_000), 1);
    assert_eq!(exptime(Expiry::After(Duration::ZERO), 1_000), 1);
    assert_eq!(exptime(Expiry::After(Duration::from_millis(1500)), 0), 2);
    assert_eq!(exptime(Expiry::secs(2_592_000), 1_000), 2_592_000);
    assert_eq!(
        exptime(Expiry::secs(2_592_001), 1_700_000_000),
        1_702_592_001
    );
    assert_eq!(exptime(Expiry::secs(u64::MAX), 1), u32::MAX);
}

#[test]
fn keys_on_the_wire() {
    let k = WireKey::meta(b"user:1").unwrap();
    assert!(!k.base64);
    let k = WireKey::meta(b"has space").unwrap();
    assert!(k.base64);
    assert_eq!(&*k.token, b"aGFzIHNwYWNl");
    assert!(WireKey::meta(&[0u8; 186]).is_ok());
    assert!(WireKey::meta(&[0u8; 187]).is_err());
    assert!(WireKey::meta(b"").is_err());
    let long = WireKey::meta(&[b'k'; 251]).unwrap_err().to_string();
    assert!(long.contains("251 bytes, limit 250"), "{long}");
    assert!(WireKey::text(b"has space").is_err());
    assert_eq!(
        decode_echoed_key(b"aGFzIHNwYWNl", true).unwrap(),
        b"has space"
    );
}

#[test]
fn encoders() {
    let k = WireKey::meta(b"foo").unwrap();
    let b = WireKey::meta(b"a b").unwrap();
    let mg = MgFlags {
        value: true,
        client_flags: true,
        cas: true,
        quiet: true,
        opaque: Some(7),
        vivify: Some(30),
        ..MgFlags::default()
    };
    assert_eq!(enc(|o| encode_mg(o, &k, &mg)), "mg foo v f c q O7 N30\r\n");
    assert_eq!(
        enc(|o| encode_mg(o, &b, &MgFlags::default())),
        "mg YSBi b\r\n"
    );
    let ms = MsFlags {
        mode: SetMode::Add,
        client_flags: 16,
        exptime: 60,
        cas: Some(9),
        ..MsFlags::default()
    };
    assert_eq!(
        enc(|o| encode_ms(o, &k, b"a\r\nb", &ms)),
        "ms foo 4 F16 T60 C9 ME\r\na\r\nb\r\n"
    );
    let md = MdFlags {
        invalidate: true,
        exptime: Some(30),
        ..MdFlags::default()
    };
    assert_eq!(enc(|o| encode_md(o, &k, &md)), "md foo I T30\r\n");
    let ma = MaFlags {
        decrement: true,
        delta: 5,
        value: true,
        ..MaFlags::default()
    };
    assert_eq!(enc(|o| encode_ma(o, &k, &ma)), "ma foo MD D5 v\r\n");
    assert_eq!(enc(encode_mn), "mn\r\n");
    assert_eq!(
        enc(|o| encode_get(o, true, &[k.clone(), k.clone()])),
        "gets foo foo\r\n"
    );
    assert_eq!(
        enc(|o| encode_gat(o, false, 10, std::slice::from_ref(&k))),
        "gat 10 foo\r\n"
    );
    assert_eq!(
        enc(|o| encode_storage(
            o,
            &k,
            b"xy",
            &TextStore {
                mode: SetMode::Append,
                client_flags: 1,
                exptime: 2,
                cas: None,
                noreply: true
            }
        )),
        "append foo 1 2 2 noreply\r\nxy\r\n"
    );
    assert_eq!(
        enc(|o| encode_storage(
            o,
            &k,
            b"",
            &TextStore {
                cas: Some(77),
                ..TextStore::default()
            }
        )),
        "cas foo 0 0 0 77\r\n\r\n"
    );
    assert_eq!(enc(|o| encode_delete(o, &k, false)), "delete foo\r\n");
    assert_eq!(
        enc(|o| encode_incr_decr(o, false, &k, 3, false)),
        "incr foo 3\r\n"
    );
    assert_eq!(
        enc(|o| encode_touch(o, &k, 5, true)),
        "touch foo 5 noreply\r\n"
    );
    assert_eq!(enc(|o| encode_flush_all(o, None, false)), "flush_all\r\n");
    assert_eq!(
        enc(|o| encode_stats(o, Some("slabs")).unwrap()),
        "stats slabs\r\n"
    );
    assert!(encode_stats(&mut Vec::new(), Some("a b")).is_err());
    assert_eq!(enc(encode_version), "version\r\n");
}

#[test]
fn parses_meta_replies() {
    let p = ReplyParser::default();
    let (r, n) = p
        .parse(b"VA 4 f16 c99 t-1 W kfoo O7\r\na\r\nb\r\nHD\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(n, 34);
    let Reply::Meta(m) = r else { panic!() };
    assert_eq!(m.status, Some(MetaStatus::Va));
    assert_eq!(m.value.as_deref(), Some(&b"a\r\nb"[..]));
    assert_eq!(
        (m.client_flags, m.cas, m.ttl, m.win),
        (Some(16), Some(99), Some(-1), true)
    );
    assert_eq!(m.key.as_deref(), Some(&b"foo"[..]));
    assert_eq!(m.opaque, Some(7));
    let (r, _) = p.parse(b"EN\r\n").unwrap().unwrap();
    assert!(matches!(
        r,
        Reply::Meta(MetaReply {
            status: Some(MetaStatus::En),
            ..
        })
    ));
    let (r, _) = p.parse(b"HD X Z\r\n").unwrap().unwrap();
    let Reply::Meta(m) = r else { panic!() };
    assert!(m.stale && m.win_elsewhere && !m.win);
    assert_eq!(p.parse(b"VA 4\r\nab").unwrap(), None);
    assert_eq!(p.parse(b"VA 0\r\n").unwrap(), None);
    let (r, n) = p.parse(b"VA 0\r\n\r\n").unwrap().unwrap();
    assert_eq!(n, 8);
    assert!(matches!(r, Reply::Meta(MetaReply { value: Some(ref v), .. }) if v.is_empty()));
}

#[test]
fn parses_text_replies() {
    let p = ReplyParser::default();
    let (all, used) = p
        .parse_all(
            b"VALUE k 5 3 12\r\nabc\r\nEND\r\nSTORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\n\
DELETED\r\nTOUCHED\r\nOK\r\n42\r\nSTAT pid 12\r\nVERSION 1.6.18\r\nERROR\r\n\
CLIENT_ERROR bad\r\nSERVER_ERROR out of memory\r\n",
        )
        .unwrap();
    assert_eq!(used, 173);
    assert_eq!(
        all[0],
        Reply::Value(TextValue {
            key: b"k".to_vec(),
            client_flags: 5,
            cas: Some(12),
            data: b"abc".to_vec()
        })
    );
    assert_eq!(
        &all[1..],
        &[
            Reply::End,
            Reply::Stored,
            Reply::NotStored,
            Reply::Exists,
            Reply::NotFound,
            Reply::Deleted,
            Reply::Touched,
            Reply::Ok,
            Reply::Number(42),
            Reply::Stat("pid".into(), "12".into()),
            Reply::Version("1.6.18".into()),
            Reply::Error,
            Reply::ClientError("bad".into()),
            Reply::ServerError("out of memory".into()),
        ]
    );
}

#[test]
fn hostile_replies_are_protocol_errors() {
    let p = ReplyParser::new(1 << 20);
    for bad in [
        &b"VALUE k 0 999999999999\r\n"[..],
        b"VA 99999999999999999999999\r\n",
        b"VA 3\r\nabcd\r\n",
        b"VA 3\r\nabXY",
        b"VALUE k 0 2\r\nabc\r\nEND\r\n",
        b"VALUE k 0 1 2 3\r\na\r\n",
        b"VALUE k 0\r\n",
        b"VALUE k 4294967296 1\r\na\r\n",
        b"HD\n",
        b"\r\n",
        b"BOGUS\r\n",
        b"STORED extra\r\n",
        b"HD c12x\r\n",
        b"HD  c1\r\n",
        b"99999999999999999999999\r\n",
    ] {
        match p.parse(bad) {
            Err(Error::Protocol(_)) => {}
            other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    let long = vec![b'a'; DEFAULT_MAX_LINE + 1];
    assert!(matches!(p.parse(&long), Err(Error::Protocol(_))));
}

#[test]
fn error_replies_map_to_typed_errors() {
    let too_large = Reply::ServerError(TOO_LARGE_TEXT.into());
    assert!(matches!(
        too_large.into_error("HD", Some(b"k"), 2_000_000),
        Error::ValueTooLarge {
            size: 2_000_000,
            limit: None
        }
    ));
    let nan = Reply::ClientError(NON_NUMERIC_TEXT.into());
    assert!(matches!(
        nan.clone().into_error("VA", Some(b"k"), 0),
        Error::NotANumber { key } if key == "k"
    ));
    assert!(matches!(
        nan.into_error("VA", None, 0),
        Error::Client(t) if t == NON_NUMERIC_TEXT
    ));
    assert!(matches!(
        Reply::ServerError("x".into()).into_error("HD", Some(b"k"), 0),
        Error::Server(t) if t == "x"
    ));
    assert!(matches!(
        Reply::ClientError("y".into()).into_error("HD", Some(b"k"), 0),
        Error::Client(t) if t == "y"
    ));
    assert!(matches!(
        Reply::Stored.into_error("HD", Some(b"k"), 0),
        Error::Protocol(_)
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// Looking for an expected key gives exactly the scanning fast path's item when its
    /// key is the one expected, and nothing otherwise, on items that almost parse.
    #[test]
    fn expected_item_is_plain_item_for_that_key(
        key in proptest::sample::select(vec!["k", "kk", "k\u{1}", "", "kk k"]),
        expected in proptest::sample::select(vec!["k", "kk", "kkk"]),
        flags in proptest::sample::select(vec!["0", "4294967296", "x", ""]),
        len in 0usize..6,
        cas in proptest::option::of(proptest::sample::select(vec!["7", ""])),
        line_end in proptest::sample::select(vec!["\r\n", " \r\n", "\n"]),
        data_skew in -1isize..2,
        data_end in proptest::sample::select(vec!["\r\n", "\r", "", "xx"]),
        max_value in 0usize..8,
    ) {
        let mut bytes = format!("VALUE {key} {flags} {len}").into_bytes();
        if let Some(cas) = cas {
            bytes.extend_from_slice(format!(" {cas}").as_bytes());
        }
        bytes.extend_from_slice(line_end.as_bytes());
        bytes.extend(std::iter::repeat_n(b'd', len.saturating_add_signed(data_skew)));
        bytes.extend_from_slice(data_end.as_bytes());
        let parser = ReplyParser::new(max_value);
        let scanned = parser
            .plain_item(&bytes)
            .filter(|(item, _)| item.key == expected.as_bytes());
        proptest::prop_assert_eq!(parser.expected_item(&bytes, expected.as_bytes()), scanned);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

    /// The single-op fast path agrees with the general parser on meta replies that almost
    /// parse: same reply and length when it answers, and when it declines, the general
    /// path's outcome (a reply, more bytes needed, or an error) is what `parse` gives.
    #[test]
    fn plain_meta_reply_agrees_with_the_general_parser(
        head in proptest::sample::select(vec!["VA ", "VA", "HD", "EN", "NS", "EX", "NF", "MN", "VALUE "]),
        len in 0usize..8,
        len_text in proptest::option::weighted(0.2, proptest::sample::select(vec![
            "12345678901234567890", "1x", "", "007",
        ])),
        flags in proptest::collection::vec(proptest::sample::select(vec![
            "f0", "f4294967295", "f4294967296", "O12", "O", "c18446744073709551615", "c7",
            "t-1", "t30", "k", "kkey", "W", "", "f1x", "O1O2", "t9223372036854775808",
        ]), 0..4),
        line_end in proptest::sample::select(vec!["\r\n", " \r\n", "\r\r\n", "\n", "\r"]),
        data_skew in -1isize..2,
        data_end in proptest::sample::select(vec!["\r\n", "\r", "", "xx", "\n"]),
        max_value in 0usize..10,
        max_line in 0usize..80,
    ) {
        let mut bytes = head.as_bytes().to_vec();
        if head.starts_with("VA") {
            bytes.extend_from_slice(len_text.unwrap_or(&len.to_string()).as_bytes());
        }
        for flag in &flags {
            bytes.push(b' ');
            bytes.extend_from_slice(flag.as_bytes());
        }
        bytes.extend_from_slice(line_end.as_bytes());
        bytes.extend(std::iter::repeat_n(b'd', len.saturating_add_signed(data_skew)));
        bytes.extend_from_slice(data_end.as_bytes());
        let parser = ReplyParser::new(max_value).with_max_line(max_line);
        let general = parser.parse_general(&bytes);
        if let Some(fast) = parser.plain_meta_reply(&bytes) {
            proptest::prop_assert_eq!(general.as_ref().ok(), Some(&Some(fast)));
        }
        match (parser.parse(&bytes), general) {
            (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => proptest::prop_assert!(false, "parse {a:?}, general {b:?}"),
        }
    }
}

#[test]
fn plain_meta_reply_takes_the_single_op_replies() {
    let parser = ReplyParser::default();
    let (parsed, used) = parser.plain_meta_reply(b"HD O7 c3\r\nEN\r\n").unwrap();
    assert_eq!(used, 10);
    let Reply::Meta(m) = parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(
        (m.status, m.opaque, m.cas),
        (Some(MetaStatus::Hd), Some(7), Some(3))
    );
    let reply = b"VA 5 f16 O210341445 c99\r\nhello\r\nEN\r\n";
    let (parsed, used) = parser.plain_meta_reply(reply).unwrap();
    assert_eq!(used, reply.len() - 4);
    let Reply::Meta(m) = parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(m.value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(
        (m.client_flags, m.opaque, m.cas),
        (Some(16), Some(210_341_445), Some(99))
    );
}

#[test]
fn extend_short_appends_as_extend_from_slice_does() {
    let source: Vec<u8> = (0..40u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(1))
        .collect();
    for len in 0..=source.len() {
        for (prefix, room) in [(0, 0), (3, 0), (5, 16), (7, 100)] {
            let mut want = vec![9u8; prefix];
            want.reserve_exact(room);
            let mut got = want.clone();
            want.extend_from_slice(&source[..len]);
            extend_short(&mut got, &source[..len]);
            assert_eq!(got, want, "{len} bytes after {prefix}, room {room}");
        }
    }
}
