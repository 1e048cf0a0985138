//! Property tests of the sans-IO memcached reply parser: replies split at any byte boundary
//! parse exactly as when unsplit, the borrowing retrieval parse agrees with the owning one, and
//! garbage never panics nor claims bytes it was not given.
#![cfg(feature = "memcached")]

use larder::memcache::proto::{MetaStatus, Reply, ReplyParser, Retrieval};
use proptest::prelude::*;

/// One well-formed reply: its bytes and, for value replies, the value it carries.
fn reply() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    let data =
        proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300);
    let meta_flags = proptest::collection::vec(
        prop_oneof![
            (0u64..u64::MAX).prop_map(|c| format!("c{c}")),
            any::<u32>().prop_map(|f| format!("f{f}")),
            Just("t-1".to_string()),
            Just("W".to_string()),
            Just("X".to_string()),
            Just("Z".to_string()),
            Just("kkey:1".to_string()),
            (0u32..1000).prop_map(|o| format!("O{o}")),
        ],
        0..4,
    );
    prop_oneof![
        (data.clone(), meta_flags.clone()).prop_map(|(d, f)| {
            let mut b = format!("VA {}", d.len()).into_bytes();
            for fl in &f {
                b.push(b' ');
                b.extend_from_slice(fl.as_bytes());
            }
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(&d);
            b.extend_from_slice(b"\r\n");
            (b, Some(d))
        }),
        (
            prop_oneof![
                Just("HD"),
                Just("EN"),
                Just("NS"),
                Just("EX"),
                Just("NF"),
                Just("MN")
            ],
            meta_flags
        )
            .prop_map(|(s, f)| {
                let mut line = s.to_string();
                for fl in &f {
                    line.push(' ');
                    line.push_str(fl);
                }
                line.push_str("\r\n");
                (line.into_bytes(), None)
            }),
        (data, any::<u32>(), proptest::option::of(any::<u64>())).prop_map(|(d, f, cas)| {
            let mut b = format!("VALUE some:key {f} {}", d.len()).into_bytes();
            if let Some(c) = cas {
                b.extend_from_slice(format!(" {c}").as_bytes());
            }
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(&d);
            b.extend_from_slice(b"\r\n");
            (b, Some(d))
        }),
        prop_oneof![
            Just("END"),
            Just("STORED"),
            Just("NOT_STORED"),
            Just("EXISTS"),
            Just("NOT_FOUND"),
            Just("DELETED"),
            Just("TOUCHED"),
            Just("OK"),
            Just("ERROR"),
            Just("STAT curr_items 12"),
            Just("VERSION 1.6.18"),
            Just("SERVER_ERROR out of memory"),
            Just("CLIENT_ERROR bad data chunk"),
        ]
        .prop_map(|l| (format!("{l}\r\n").into_bytes(), None)),
        any::<u64>().prop_map(|n| (format!("{n}\r\n").into_bytes(), None)),
    ]
}

/// Feeds `chunks` one after the other, parsing every complete reply as soon as it is there.
fn parse_incrementally(parser: &ReplyParser, chunks: &[&[u8]]) -> (Vec<Reply>, usize) {
    let mut buf = Vec::new();
    let mut start = 0;
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some((reply, used)) = parser.parse(&buf[start..]).expect("valid replies") {
            assert!(used > 0 && start + used <= buf.len());
            out.push(reply);
            start += used;
        }
    }
    (out, start)
}

fn value_of(reply: &Reply) -> Option<&[u8]> {
    match reply {
        Reply::Meta(m) if m.status == Some(MetaStatus::Va) => m.value.as_deref(),
        Reply::Value(v) => Some(&v.data),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn split_replies_parse_like_unsplit(
        replies in proptest::collection::vec(reply(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let parser = ReplyParser::default();
        let bytes: Vec<u8> = replies.iter().flat_map(|(b, _)| b.clone()).collect();
        let (whole, used) = parser.parse_all(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(whole.len(), replies.len());
        for (reply, (_, value)) in whole.iter().zip(&replies) {
            prop_assert_eq!(value_of(reply), value.as_deref());
        }

        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points {
            chunks.push(&bytes[prev..p]);
            prev = p;
        }
        chunks.push(&bytes[prev..]);
        let (split, used) = parse_incrementally(&parser, &chunks);
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn borrowed_retrieval_parse_agrees_with_parse(
        replies in proptest::collection::vec(reply(), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let parser = ReplyParser::default();
        let bytes: Vec<u8> = replies.iter().flat_map(|(b, _)| b.clone()).collect();
        // Whole, and cut short at any point (both must need more bytes at the same place).
        for bytes in [&bytes[..], &bytes[..cut.index(bytes.len() + 1)]] {
            let mut rest = bytes;
            loop {
                let owned = parser.parse(rest).unwrap();
                let borrowed = parser.parse_retrieval(rest).unwrap();
                match (owned, borrowed) {
                    (None, None) => break,
                    (Some((Reply::Value(v), n)), Some((Retrieval::Item(item), m))) => {
                        prop_assert_eq!(n, m);
                        prop_assert_eq!(item.to_text_value(), v);
                        rest = &rest[n..];
                    }
                    (Some((Reply::End, n)), Some((Retrieval::End, m))) => {
                        prop_assert_eq!(n, m);
                        rest = &rest[n..];
                    }
                    (Some((reply, n)), Some((Retrieval::Other(other), m))) => {
                        prop_assert!(!matches!(reply, Reply::Value(_) | Reply::End));
                        prop_assert_eq!((reply, n), (other, m));
                        rest = &rest[n..];
                    }
                    (owned, borrowed) => {
                        prop_assert!(false, "parse gave {:?}, parse_retrieval {:?}", owned, borrowed)
                    }
                }
            }
        }
    }

    #[test]
    fn byte_at_a_time_parses_like_unsplit((bytes, value) in reply()) {
        let parser = ReplyParser::default();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        let (split, used) = parse_incrementally(&parser, &chunks);
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(split.len(), 1);
        prop_assert_eq!(value_of(&split[0]), value.as_deref());
    }

    #[test]
    fn garbage_never_panics_nor_overclaims(
        bytes in proptest::collection::vec(
            prop_oneof![
                Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'V'), Just(b'A'),
                (b'0'..=b'9'), any::<u8>()
            ],
            0..400,
        ),
        max_value in 0usize..512,
    ) {
        let parser = ReplyParser::new(max_value);
        let mut rest = &bytes[..];
        // The borrowing parse fails exactly where the owning one does.
        prop_assert_eq!(parser.parse(rest).is_err(), parser.parse_retrieval(rest).is_err());
        while let Ok(Some((reply, used))) = parser.parse(rest) {
            prop_assert!(used > 0 && used <= rest.len());
            if let Some(v) = value_of(&reply) {
                prop_assert!(v.len() <= max_value && v.len() < used);
            }
            rest = &rest[used..];
            prop_assert_eq!(parser.parse(rest).is_err(), parser.parse_retrieval(rest).is_err());
        }
    }

    #[test]
    fn hostile_lengths_are_rejected_without_waiting(len in 1025u64..u64::MAX) {
        let parser = ReplyParser::new(1024);
        let va = format!("VA {len}\r\n");
        prop_assert!(parser.parse(va.as_bytes()).is_err());
        let value = format!("VALUE k 0 {len}\r\n");
        prop_assert!(parser.parse(value.as_bytes()).is_err());
    }
}

proptest! {
    // Cheap cases, and the fast path only differs on a few combinations: many of them.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn near_miss_value_lines_parse_the_same_both_ways(
        key in prop_oneof![
            4 => Just("k".to_string()), 1 => Just(String::new()), 1 => Just("k\u{1}".to_string()),
            1 => Just("k\u{7f}".to_string()), 1 => Just("k".repeat(250)), 1 => Just("k".repeat(251)),
        ],
        flags in prop_oneof![
            Just("0".to_string()), Just("4294967295".to_string()),
            Just("4294967296".to_string()), Just("x".to_string()), Just(String::new()),
            Just("00000000000000000001".to_string()),
        ],
        len in 0usize..12,
        len_text in proptest::option::weighted(0.2, prop_oneof![
            Just("12345678901234567890".to_string()), Just("1x".to_string()),
            Just(String::new()),
        ]),
        cas in proptest::option::of(prop_oneof![
            Just("7".to_string()), Just("18446744073709551615".to_string()),
            Just("18446744073709551616".to_string()), Just(String::new()),
        ]),
        line_end in prop_oneof![
            6 => Just("\r\n"), 1 => Just(" \r\n"), 1 => Just("\r\r\n"), 1 => Just("\n")
        ],
        data_skew in prop_oneof![6 => Just(0isize), 1 => Just(-1isize), 1 => Just(1isize)],
        data_end in prop_oneof![
            6 => Just("\r\n"), 1 => Just("\r"), 1 => Just(""), 1 => Just("xx")
        ],
        max_value in 0usize..16,
        max_line in 0usize..300,
    ) {
        let mut line = format!("{key} {flags} {}", len_text.unwrap_or_else(|| len.to_string()));
        if let Some(cas) = cas {
            line.push(' ');
            line.push_str(&cas);
        }
        let mut tail = line.into_bytes();
        tail.extend_from_slice(line_end.as_bytes());
        tail.extend(std::iter::repeat_n(b'd', len.saturating_add_signed(data_skew)));
        tail.extend_from_slice(data_end.as_bytes());
        // `VALUE ` and bytes that often almost make a valid item: the fast path and the
        // general one must agree on every outcome, errors included.
        let parser = ReplyParser::new(max_value).with_max_line(max_line);
        let mut bytes = b"VALUE ".to_vec();
        bytes.extend_from_slice(&tail);
        let owned = parser.parse(&bytes);
        let borrowed = parser.parse_retrieval(&bytes);
        match (owned, borrowed) {
            (Err(_), Err(_)) | (Ok(None), Ok(None)) => {}
            (Ok(Some((Reply::Value(v), n))), Ok(Some((Retrieval::Item(item), m)))) => {
                prop_assert_eq!((item.to_text_value(), m), (v, n));
            }
            (owned, borrowed) => {
                prop_assert!(false, "parse gave {:?}, parse_retrieval {:?}", owned, borrowed)
            }
        }
    }
}
