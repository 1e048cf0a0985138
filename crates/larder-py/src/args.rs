//! pylibmc's rules for the arguments every client face shares: expiry times and deltas.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use larder::Expiry;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// memcached reads an exptime above this many seconds as an absolute Unix time.
const RELATIVE_LIMIT: u64 = 30 * 24 * 3600;

/// A pylibmc `time` argument as an [`Expiry`]: 0 never expires, up to 30 days is seconds
/// from now, more is an absolute Unix time (as memcached reads it). An absolute time already
/// past gets the shortest life larder can give, one second.
pub(crate) fn expiry(time: i64) -> PyResult<Expiry> {
    let secs = u64::try_from(time)
        .map_err(|_| PyValueError::new_err(format!("time must be 0 or more, not {time}")))?;
    if secs == 0 {
        return Ok(Expiry::Never);
    }
    if secs <= RELATIVE_LIMIT {
        return Ok(Expiry::After(Duration::from_secs(secs)));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Expiry::After(Duration::from_secs(
        secs.saturating_sub(now).max(1),
    )))
}

/// A write's pylibmc `time` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Time {
    /// A time of 0 or more, as [`expiry`] reads it.
    After(Expiry),
    /// A negative time, which memcached reads as already expired: the write is acknowledged
    /// and the item is gone at once (Django's memcached backends send -1 for a timeout of
    /// 0). larder's core has no such expiry, so each write gives memcached's outcome
    /// another way (see `calls::store_io`).
    Expired,
}

/// A write's `time` (see [`Time`]); below `i32::MIN` is a `ValueError` (pylibmc would send
/// a wrapped number).
pub(crate) fn time(time: i64) -> PyResult<Time> {
    if time >= 0 {
        return expiry(time).map(Time::After);
    }
    if time < i64::from(i32::MIN) {
        return Err(PyValueError::new_err(format!(
            "time {time} is out of range (a negative time means already expired)"
        )));
    }
    Ok(Time::Expired)
}

/// An `incr`/`decr` delta: pylibmc refuses a negative one.
pub(crate) fn delta(delta: i64) -> PyResult<u64> {
    u64::try_from(delta).map_err(|_| PyValueError::new_err("delta must be positive"))
}
