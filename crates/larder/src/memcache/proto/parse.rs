//! The incremental reply parser: bytes received so far in, one complete reply (or "need
//! more") out, within configured size limits.

use super::keys::*;
use super::reply::*;
use crate::keys::check_key;
use crate::{Error, Result};

/// Incremental reply parser with size limits. Stateless: feed it the unconsumed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyParser {
    max_value: usize,
    max_line: usize,
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_VALUE_SIZE)
    }
}

pub(super) fn protocol(msg: impl Into<String>) -> Error {
    Error::Protocol(msg.into())
}

pub(super) fn lossy_prefix(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(48)];
    String::from_utf8_lossy(cut).into_owned()
}

pub(super) fn parse_u64(tok: &[u8], what: &str) -> Result<u64> {
    match leading_digits(tok) {
        Some((n, len)) if len == tok.len() => Ok(n),
        // Not all digits, or 20 or more of them: checked digit by digit.
        _ => {
            if tok.is_empty() || tok.len() > 20 {
                return Err(not_a_number(tok, what));
            }
            tok.iter().try_fold(0u64, |acc, &b| {
                let digit = b.wrapping_sub(b'0');
                if digit > 9 {
                    return Err(not_a_number(tok, what));
                }
                acc.checked_mul(10)
                    .and_then(|a| a.checked_add(u64::from(digit)))
                    .ok_or_else(|| protocol(format!("{what} overflows 64 bits")))
            })
        }
    }
}

/// The decimal number at the start of `s`, ended by a space or by the end of `s`, and what
/// follows that space (`None` at the end).
pub(super) fn number_token<'a>(s: &'a [u8], what: &str) -> Result<(u64, Option<&'a [u8]>)> {
    match leading_digits(s) {
        Some((n, len)) if len == s.len() => Ok((n, None)),
        Some((n, len)) if s[len] == b' ' => Ok((n, Some(&s[len + 1..]))),
        // Not a number, or 20+ digits: the token through the exact checks (and messages).
        _ => {
            let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
            let n = parse_u64(&s[..end], what)?;
            Ok((n, s.get(end + 1..).filter(|_| end < s.len())))
        }
    }
}

/// The number written by the 1 to 19 decimal digits at the start of `s` (19 digits cannot
/// overflow 64 bits) and how many digits that is; `None` when `s` starts with no digit or
/// with 20 or more.
#[inline(always)]
pub(super) fn leading_digits(s: &[u8]) -> Option<(u64, usize)> {
    let mut acc: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return (i > 0).then_some((acc, i));
        }
        if i == 19 {
            return None;
        }
        acc = acc * 10 + u64::from(digit);
    }
    (!s.is_empty() && s.len() <= 19).then_some((acc, s.len()))
}

/// `bytes.starts_with(key)`, for a key of up to 16 bytes in two overlapping word compares
/// inline: the slice comparison calls `bcmp`, whose call and dispatch cost more than the
/// compare itself for a key this short, and the multi-get reader compares every reply's key.
#[inline(always)]
pub(crate) fn starts_with_key(bytes: &[u8], key: &[u8]) -> bool {
    let n = key.len();
    let Some(head) = bytes.get(..n) else {
        return false;
    };
    let word = |s: &[u8], at: usize| -> u64 {
        let mut w = [0; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |s: &[u8], at: usize| -> u32 {
        let mut w = [0; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_le_bytes(w)
    };
    if n > 16 {
        head == key
    } else if n >= 8 {
        (word(head, 0) ^ word(key, 0)) | (word(head, n - 8) ^ word(key, n - 8)) == 0
    } else if n >= 4 {
        (half(head, 0) ^ half(key, 0)) | (half(head, n - 4) ^ half(key, n - 4)) == 0
    } else {
        head == key
    }
}

#[cold]
pub(super) fn not_a_number(tok: &[u8], what: &str) -> Error {
    protocol(format!(
        "{what} is not a decimal number: {:?}",
        lossy_prefix(tok)
    ))
}

pub(super) fn parse_u32(tok: &[u8], what: &str) -> Result<u32> {
    u32::try_from(parse_u64(tok, what)?).map_err(|_| protocol(format!("{what} exceeds 32 bits")))
}

pub(super) fn parse_i64(tok: &[u8], what: &str) -> Result<i64> {
    if tok == b"-1" {
        return Ok(-1);
    }
    i64::try_from(parse_u64(tok, what)?).map_err(|_| protocol(format!("{what} out of range")))
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl ReplyParser {
    /// A parser that rejects values longer than `max_value` bytes (before allocating).
    pub fn new(max_value: usize) -> Self {
        Self {
            max_value,
            max_line: DEFAULT_MAX_LINE,
        }
    }

    /// The largest value accepted.
    pub fn max_value(&self) -> usize {
        self.max_value
    }

    /// Sets the longest reply line accepted (at least 64 bytes).
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line.max(64);
        self
    }

    /// Parses one reply from the start of `buf`.
    ///
    /// `Ok(Some((reply, used)))` when a complete reply is there (`used <= buf.len()`),
    /// `Ok(None)` when more bytes are needed, `Err(Error::Protocol)` when the bytes cannot be
    /// a valid reply (the connection must then be dropped).
    pub fn parse(&self, buf: &[u8]) -> Result<Option<(Reply, usize)>> {
        if let Some(found) = self.plain_meta_reply(buf) {
            return Ok(Some(found));
        }
        self.parse_general(buf)
    }

    /// The fast path of [`parse`](Self::parse) for the replies of single meta requests: a
    /// complete `VA <len>[ <flag>…]\r\n<data>\r\n`, or `HD`, `EN`, `NS`, `EX` or `NF` with
    /// flags, whose flags are all `f`, `c`, `O` or `t` with a plain number (larder's requests
    /// always carry an `O`), read in one forward pass. `None` for anything else (another
    /// reply, an incomplete one, any other flag or irregularity), which the general path
    /// then parses or rejects: both accept exactly the same such replies, alike.
    #[inline]
    pub(super) fn plain_meta_reply(&self, buf: &[u8]) -> Option<(Reply, usize)> {
        let status = match buf.get(..2)? {
            b"VA" => MetaStatus::Va,
            b"HD" => MetaStatus::Hd,
            b"EN" => MetaStatus::En,
            b"NS" => MetaStatus::Ns,
            b"EX" => MetaStatus::Ex,
            b"NF" => MetaStatus::Nf,
            _ => return None,
        };
        let mut at = 2;
        let len = if status == MetaStatus::Va {
            let (len, digits) = leading_digits(buf.get(3..).filter(|_| buf[2] == b' ')?)?;
            at += 1 + digits;
            Some(usize::try_from(len).ok().filter(|&n| n <= self.max_value)?)
        } else {
            None
        };
        let mut m = MetaReply {
            status: Some(status),
            ..MetaReply::default()
        };
        while *buf.get(at)? == b' ' {
            let flag = *buf.get(at + 1)?;
            let (n, digits) = leading_digits(buf.get(at + 2..)?)?;
            match flag {
                b'f' => m.client_flags = Some(u32::try_from(n).ok()?),
                b'O' => m.opaque = Some(u32::try_from(n).ok()?),
                b'c' => m.cas = Some(n),
                b't' => m.ttl = Some(i64::try_from(n).ok()?),
                _ => return None,
            }
            at += 2 + digits;
        }
        // `at` is at the first byte after the flags: the line must end there. A reply
        // without any flag takes the general path (it has its own rules for a bare status).
        let header_len = at + 2;
        if at == 2 || buf.get(at..header_len)? != b"\r\n" || header_len > self.max_line {
            return None;
        }
        let Some(len) = len else {
            return Some((Reply::Meta(m), header_len));
        };
        let data = buf.get(header_len..header_len + len)?;
        if buf.get(header_len + len..header_len + len + 2)? != b"\r\n" {
            return None;
        }
        m.value = Some(data.to_vec());
        Some((Reply::Meta(m), header_len + len + 2))
    }

    /// [`parse`](Self::parse) of any reply.
    pub(super) fn parse_general(&self, buf: &[u8]) -> Result<Option<(Reply, usize)>> {
        let window = &buf[..buf.len().min(self.max_line)];
        let nl = match memchr::memchr(b'\n', window) {
            Some(i) => i,
            None if buf.len() >= self.max_line => {
                return Err(protocol(format!(
                    "reply line longer than {} bytes",
                    self.max_line
                )))
            }
            None => return Ok(None),
        };
        if nl == 0 || buf[nl - 1] != b'\r' {
            return Err(protocol(format!(
                "reply line not ended by \\r\\n: {:?}",
                lossy_prefix(&buf[..nl])
            )));
        }
        let line = &buf[..nl - 1];
        let header_len = nl + 1;
        let (head, rest) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[line.len()..]),
        };
        let single = |reply: Reply| -> Result<Option<(Reply, usize)>> {
            if rest.is_empty() && head.len() == line.len() {
                Ok(Some((reply, header_len)))
            } else {
                Err(protocol(format!(
                    "unexpected text after reply: {:?}",
                    lossy_prefix(line)
                )))
            }
        };
        match head {
            b"VA" => {
                let mut toks = rest.split(|&b| b == b' ');
                let len = parse_u64(toks.next().unwrap_or(&[]), "VA length")?;
                let len = self.check_len(len)?;
                let mut meta = parse_meta_flags(MetaStatus::Va, toks)?;
                match self.data(buf, header_len, len)? {
                    None => Ok(None),
                    Some((data, used)) => {
                        meta.value = Some(data);
                        Ok(Some((Reply::Meta(meta), used)))
                    }
                }
            }
            b"HD" | b"EN" | b"NS" | b"EX" | b"NF" | b"MN" => {
                let status = match head {
                    b"HD" => MetaStatus::Hd,
                    b"EN" => MetaStatus::En,
                    b"NS" => MetaStatus::Ns,
                    b"EX" => MetaStatus::Ex,
                    b"NF" => MetaStatus::Nf,
                    _ => MetaStatus::Mn,
                };
                let toks = rest.split(|&b| b == b' ').filter(move |_| !rest.is_empty());
                let meta = parse_meta_flags(status, toks)?;
                Ok(Some((Reply::Meta(meta), header_len)))
            }
            b"VALUE" => Ok(self
                .text_item(buf, line, rest, header_len)?
                .map(|(item, used)| (Reply::Value(item.to_text_value()), used))),
            b"END" => single(Reply::End),
            b"STORED" => single(Reply::Stored),
            b"NOT_STORED" => single(Reply::NotStored),
            b"EXISTS" => single(Reply::Exists),
            b"NOT_FOUND" => single(Reply::NotFound),
            b"DELETED" => single(Reply::Deleted),
            b"TOUCHED" => single(Reply::Touched),
            b"OK" => single(Reply::Ok),
            b"ERROR" => single(Reply::Error),
            b"CLIENT_ERROR" => Ok(Some((Reply::ClientError(text(rest)), header_len))),
            b"SERVER_ERROR" => Ok(Some((Reply::ServerError(text(rest)), header_len))),
            b"VERSION" => Ok(Some((Reply::Version(text(rest)), header_len))),
            b"STAT" => {
                let (name, value) = match rest.iter().position(|&b| b == b' ') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &rest[rest.len()..]),
                };
                if name.is_empty() {
                    return Err(protocol("STAT line without a name"));
                }
                Ok(Some((Reply::Stat(text(name), text(value)), header_len)))
            }
            _ if !head.is_empty() && head.iter().all(u8::is_ascii_digit) => {
                // memcached pads nothing here, but tolerate trailing spaces.
                if rest.iter().any(|&b| b != b' ') {
                    return Err(protocol(format!(
                        "unexpected text after number: {:?}",
                        lossy_prefix(line)
                    )));
                }
                let n = parse_u64(head, "counter value")?;
                Ok(Some((Reply::Number(n), header_len)))
            }
            _ => Err(protocol(format!(
                "unexpected reply line: {:?}",
                lossy_prefix(line)
            ))),
        }
    }

    /// Parses one reply of a text retrieval (`get`/`gets`) from the start of `buf` without
    /// copying: a `VALUE` item borrowed from `buf`, `END`, or any other reply (parsed by
    /// [`parse`](Self::parse), e.g. a `SERVER_ERROR`). Same contract as `parse` otherwise.
    pub fn parse_retrieval<'a>(&self, buf: &'a [u8]) -> Result<Option<(Retrieval<'a>, usize)>> {
        if let Some(found) = self.plain_item(buf) {
            return Ok(Some((Retrieval::Item(found.0), found.1)));
        }
        let window = &buf[..buf.len().min(self.max_line)];
        if let Some(nl) = memchr::memchr(b'\n', window) {
            if nl > 0 && buf[nl - 1] == b'\r' {
                let line = &buf[..nl - 1];
                if let Some(rest) = line.strip_prefix(b"VALUE ") {
                    return Ok(self
                        .text_item(buf, line, rest, nl + 1)?
                        .map(|(item, used)| (Retrieval::Item(item), used)));
                }
                if line == b"END" {
                    return Ok(Some((Retrieval::End, nl + 1)));
                }
            }
        }
        Ok(self
            .parse(buf)?
            .map(|(reply, used)| (Retrieval::Other(reply), used)))
    }

    /// The fast path of [`parse_retrieval`](Self::parse_retrieval): a complete, well-formed
    /// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n` read in one forward pass, without
    /// first searching for the end of the line. `None` for anything else (another reply, an
    /// incomplete one, any irregularity), which the general path then parses or rejects: both
    /// paths accept exactly the same well-formed items.
    pub(super) fn plain_item<'a>(&self, buf: &'a [u8]) -> Option<(ItemRef<'a>, usize)> {
        let rest = buf.strip_prefix(b"VALUE ")?;
        let key_len = rest[..rest.len().min(crate::keys::MAX_KEY_LEN + 1)]
            .iter()
            .position(|&b| b <= b' ' || b == 0x7f)?;
        self.plain_item_after_key(buf, key_len)
    }

    /// [`plain_item`](Self::plain_item) for an item the caller expects next: `Some` only
    /// when `buf` starts with a complete, well-formed `VALUE` item whose key is exactly
    /// `key`, found by comparing instead of scanning. `key` must be a valid text key (see
    /// [`check_key`](crate::keys::check_key)); then the result is exactly `plain_item`'s
    /// whenever that item's key is `key`, and `None` otherwise. Inlined: returning the item
    /// through memory stalled the caller's loop on every item.
    #[inline(always)]
    pub(crate) fn expected_item<'a>(
        &self,
        buf: &'a [u8],
        key: &[u8],
    ) -> Option<(ItemRef<'a>, usize)> {
        let rest = buf.strip_prefix(b"VALUE ")?;
        if !starts_with_key(rest, key) {
            return None;
        }
        self.plain_item_after_key(buf, key.len())
    }

    /// The rest of [`plain_item`](Self::plain_item) once the key is known to be the
    /// `key_len` bytes after `VALUE ` (none of them a space or control byte).
    #[inline(always)]
    fn plain_item_after_key<'a>(
        &self,
        buf: &'a [u8],
        key_len: usize,
    ) -> Option<(ItemRef<'a>, usize)> {
        const PREFIX: usize = b"VALUE ".len();
        let rest = &buf[PREFIX..];
        if key_len == 0 || rest.get(key_len) != Some(&b' ') {
            return None;
        }
        let mut at = key_len + 1;
        let (flags, n) = leading_digits(&rest[at..])?;
        at += n;
        if rest.get(at) != Some(&b' ') {
            return None;
        }
        let (len, n) = leading_digits(&rest[at + 1..])?;
        at += 1 + n;
        let cas = match rest.get(at) {
            Some(b' ') => {
                let (cas, n) = leading_digits(&rest[at + 1..])?;
                at += 1 + n;
                Some(cas)
            }
            _ => None,
        };
        if rest.get(at..at + 2) != Some(b"\r\n") {
            return None;
        }
        let header_len = PREFIX + at + 2;
        let flags = u32::try_from(flags).ok()?;
        let len = usize::try_from(len).ok().filter(|&n| n <= self.max_value)?;
        if header_len > self.max_line {
            return None;
        }
        let end = header_len.checked_add(len)?;
        if buf.get(end..end.checked_add(2)?) != Some(b"\r\n") {
            return None;
        }
        Some((
            ItemRef {
                key: &rest[..key_len],
                flags,
                cas,
                data: &buf[header_len..end],
            },
            end + 2,
        ))
    }

    /// The item of a `VALUE` line (`rest` is the line after `VALUE `) and its data block,
    /// which starts at `header_len` in `buf`.
    fn text_item<'a>(
        &self,
        buf: &'a [u8],
        line: &[u8],
        rest: &'a [u8],
        header_len: usize,
    ) -> Result<Option<(ItemRef<'a>, usize)>> {
        // One pass over `<key> <flags> <bytes>[ <cas>]`: the key up to the first space, then
        // each number read up to the space after it.
        let malformed = || protocol(format!("malformed VALUE line: {:?}", lossy_prefix(line)));
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(malformed)?;
        let key = &rest[..space];
        if check_key(key).is_err() {
            return Err(protocol("VALUE line with an invalid key"));
        }
        let (flags, after) = number_token(&rest[space + 1..], "VALUE flags")?;
        let flags = u32::try_from(flags).map_err(|_| protocol("VALUE flags exceed 32 bits"))?;
        let (len, after) = number_token(after.ok_or_else(malformed)?, "VALUE length")?;
        let len = self.check_len(len)?;
        let cas = match after {
            None => None,
            Some(tok) => match number_token(tok, "VALUE cas")? {
                (cas, None) => Some(cas),
                (_, Some(_)) => return Err(malformed()),
            },
        };
        Ok(self.data_range(buf, header_len, len)?.map(|(data, used)| {
            (
                ItemRef {
                    key,
                    flags,
                    cas,
                    data,
                },
                used,
            )
        }))
    }

    fn check_len(&self, len: u64) -> Result<usize> {
        match usize::try_from(len) {
            Ok(n) if n <= self.max_value => Ok(n),
            _ => Err(protocol(format!(
                "reply announces a value of {len} bytes, limit {}",
                self.max_value
            ))),
        }
    }

    /// The data block of `len` bytes after the header, checked for its `\r\n` terminator.
    fn data(&self, buf: &[u8], start: usize, len: usize) -> Result<Option<(Vec<u8>, usize)>> {
        Ok(self
            .data_range(buf, start, len)?
            .map(|(data, used)| (data.to_vec(), used)))
    }

    /// Like [`data`](Self::data), borrowing the block from `buf`.
    fn data_range<'a>(
        &self,
        buf: &'a [u8],
        start: usize,
        len: usize,
    ) -> Result<Option<(&'a [u8], usize)>> {
        let end = start + len;
        if buf.len() < end + 2 {
            // Catch a bad terminator early when the bytes are already there.
            if buf.len() > end && buf[end] != b'\r' {
                return Err(protocol("value data not followed by \\r\\n"));
            }
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(protocol(
                "value data not followed by \\r\\n (length mismatch)",
            ));
        }
        Ok(Some((&buf[start..end], end + 2)))
    }

    /// Parses every complete reply in `buf`, returning them with the bytes used in total.
    pub fn parse_all(&self, buf: &[u8]) -> Result<(Vec<Reply>, usize)> {
        let mut out = Vec::new();
        let mut used = 0;
        while let Some((reply, n)) = self.parse(&buf[used..])? {
            out.push(reply);
            used += n;
        }
        Ok((out, used))
    }
}

pub(super) fn parse_meta_flags<'a>(
    status: MetaStatus,
    toks: impl Iterator<Item = &'a [u8]>,
) -> Result<MetaReply> {
    let mut m = MetaReply {
        status: Some(status),
        ..MetaReply::default()
    };
    for tok in toks {
        let (flag, val) = match tok.split_first() {
            Some((f, v)) => (*f, v),
            None => return Err(protocol("empty meta flag (double space)")),
        };
        match flag {
            b'c' => m.cas = Some(parse_u64(val, "meta c flag")?),
            b'f' => m.client_flags = Some(parse_u32(val, "meta f flag")?),
            b't' => m.ttl = Some(parse_i64(val, "meta t flag")?),
            b'k' => m.key = Some(val.to_vec()),
            b'b' => m.key_base64 = true,
            b'O' => m.opaque = Some(parse_u32(val, "meta O flag")?),
            b'W' => m.win = true,
            b'X' => m.stale = true,
            b'Z' => m.win_elsewhere = true,
            b if b.is_ascii_alphabetic() => {}
            _ => {
                return Err(protocol(format!(
                    "invalid meta flag {:?}",
                    lossy_prefix(tok)
                )))
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_key_is_starts_with() {
        let key: Vec<u8> = (0..40u8).map(|b| b'A' + b).collect();
        for len in 0..=key.len() {
            let key = &key[..len];
            let mut bytes = key.to_vec();
            bytes.extend_from_slice(b" 0 1\r\n");
            assert!(starts_with_key(&bytes, key), "{len}");
            assert!(!starts_with_key(&bytes[..len.saturating_sub(1)], key) || len == 0);
            for at in 0..len {
                let mut other = bytes.clone();
                other[at] ^= 0x20;
                assert!(!starts_with_key(&other, key), "{len}, differing at {at}");
            }
        }
    }
}
