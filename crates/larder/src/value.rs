//! Counter and text views of cached values, without a trait users must implement.
//!
//! `incr`/`decr` on an in-process cache and the [`Dependency`](crate::Dependency) helper need
//! to read a value as an integer (or store a key name as a value) whatever `V` is. memcached
//! counts on ASCII decimal bytes; we do the same: a value counts when it is an unsigned
//! integer type, or a string / byte buffer holding ASCII decimal digits, or (feature `json`)
//! a JSON number.
//! Any other type gives `None`, and the caller reports [`Error::NotANumber`](crate::Error).

use std::any::Any;

/// Reads `value` as an unsigned counter, if its type and content allow it.
pub fn as_counter<V: Any>(value: &V) -> Option<u64> {
    let any = value as &dyn Any;
    if let Some(n) = any.downcast_ref::<u64>() {
        return Some(*n);
    }
    if let Some(n) = any.downcast_ref::<u32>() {
        return Some(u64::from(*n));
    }
    if let Some(n) = any.downcast_ref::<usize>() {
        return u64::try_from(*n).ok();
    }
    if let Some(n) = any.downcast_ref::<i64>() {
        return u64::try_from(*n).ok();
    }
    if let Some(n) = any.downcast_ref::<i32>() {
        return u64::try_from(*n).ok();
    }
    if let Some(s) = any.downcast_ref::<String>() {
        return parse_decimal(s.as_bytes());
    }
    if let Some(b) = any.downcast_ref::<Vec<u8>>() {
        return parse_decimal(b);
    }
    #[cfg(feature = "json")]
    if let Some(j) = any.downcast_ref::<serde_json::Value>() {
        return j.as_u64();
    }
    None
}

/// Builds a `V` holding `n`, shaped like `like` when `V` is an enum such as JSON; `None` when
/// `V` cannot hold a counter (or cannot hold this one, e.g. `u32` past its range).
pub fn from_counter<V: Any>(n: u64) -> Option<V> {
    let boxed: Box<dyn Any> = if is::<V, u64>() {
        Box::new(n)
    } else if is::<V, u32>() {
        Box::new(u32::try_from(n).ok()?)
    } else if is::<V, usize>() {
        Box::new(usize::try_from(n).ok()?)
    } else if is::<V, i64>() {
        Box::new(i64::try_from(n).ok()?)
    } else if is::<V, i32>() {
        Box::new(i32::try_from(n).ok()?)
    } else if is::<V, String>() {
        Box::new(n.to_string())
    } else if is::<V, Vec<u8>>() {
        Box::new(n.to_string().into_bytes())
    } else {
        json::counter::<V>(n)?
    };
    boxed.downcast::<V>().ok().map(|b| *b)
}

/// Reads `value` as text (for values that store key names), if its type allows it.
pub fn as_text<V: Any>(value: &V) -> Option<String> {
    let any = value as &dyn Any;
    if let Some(s) = any.downcast_ref::<String>() {
        return Some(s.clone());
    }
    if let Some(b) = any.downcast_ref::<Vec<u8>>() {
        return String::from_utf8(b.clone()).ok();
    }
    #[cfg(feature = "json")]
    if let Some(serde_json::Value::String(s)) = any.downcast_ref::<serde_json::Value>() {
        return Some(s.clone());
    }
    None
}

/// Builds a `V` holding `text`; `None` when `V` cannot hold text.
pub fn from_text<V: Any>(text: &str) -> Option<V> {
    let boxed: Box<dyn Any> = if is::<V, String>() {
        Box::new(text.to_owned())
    } else if is::<V, Vec<u8>>() {
        Box::new(text.as_bytes().to_vec())
    } else {
        json::text::<V>(text)?
    };
    boxed.downcast::<V>().ok().map(|b| *b)
}

/// `serde_json::Value` as a counter or text, boxed when `V` is that type.
#[cfg(feature = "json")]
mod json {
    use super::{is, Any};

    pub(super) fn counter<V: Any>(n: u64) -> Option<Box<dyn Any>> {
        is::<V, serde_json::Value>().then(|| Box::new(serde_json::Value::from(n)) as Box<dyn Any>)
    }

    pub(super) fn text<V: Any>(text: &str) -> Option<Box<dyn Any>> {
        is::<V, serde_json::Value>()
            .then(|| Box::new(serde_json::Value::from(text)) as Box<dyn Any>)
    }
}

/// Without feature `json`, no `V` is a JSON value.
#[cfg(not(feature = "json"))]
#[allow(clippy::extra_unused_type_parameters)] // the same signatures as with `json`
mod json {
    use super::Any;

    pub(super) fn counter<V: Any>(_: u64) -> Option<Box<dyn Any>> {
        None
    }

    pub(super) fn text<V: Any>(_: &str) -> Option<Box<dyn Any>> {
        None
    }
}

fn is<A: Any, B: Any>() -> bool {
    std::any::TypeId::of::<A>() == std::any::TypeId::of::<B>()
}

/// Parses memcached-style ASCII decimal (digits only, at most 20, fits in u64).
pub fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_through_supported_types() {
        assert_eq!(as_counter(&7u64), Some(7));
        assert_eq!(as_counter(&"42".to_string()), Some(42));
        assert_eq!(
            as_counter(&b"18446744073709551615".to_vec()),
            Some(u64::MAX)
        );
        assert_eq!(as_counter(&b"18446744073709551616".to_vec()), None);
        assert_eq!(as_counter(&"4 2".to_string()), None);
        assert_eq!(as_counter(&-1i64), None);
        assert_eq!(as_counter(&(1.5f64)), None);
        assert_eq!(from_counter::<String>(9), Some("9".to_string()));
        assert_eq!(from_counter::<u32>(u64::from(u32::MAX) + 1), None);
        assert_eq!(from_counter::<f64>(1), None);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_values_are_counters_and_text() {
        assert_eq!(as_counter(&serde_json::json!(7)), Some(7));
        assert_eq!(as_counter(&serde_json::json!(-7)), None);
        assert_eq!(as_text(&serde_json::json!("k")), Some("k".into()));
        assert_eq!(
            from_text::<serde_json::Value>("k"),
            Some(serde_json::json!("k"))
        );
        assert_eq!(
            from_counter::<serde_json::Value>(3),
            Some(serde_json::json!(3))
        );
    }

    #[test]
    fn text_views() {
        assert_eq!(as_text(&"k".to_string()), Some("k".into()));
        assert_eq!(as_text(&vec![0xffu8]), None);
        assert_eq!(as_text(&5u64), None);
        assert_eq!(from_text::<Vec<u8>>("ab"), Some(b"ab".to_vec()));
        assert_eq!(from_text::<u64>("ab"), None);
    }
}
