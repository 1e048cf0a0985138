//! The Lua scripts that make multi-step operations atomic on the server.

/// Atomic `incr`/`decr` over our stored layout (`ARGV[3]` header bytes, the 4 flag bytes or
/// none for raw values, then ASCII decimal), with
/// memcached's arithmetic: `incr` wraps at 2^64, `decr` stops at 0. Lua numbers are
/// doubles, so the arithmetic is done on decimal strings. A value counts when it is what
/// [`parse_decimal`](crate::value::parse_decimal) reads as a `u64` (1 to 20 ASCII digits, at
/// most `u64::MAX`), as on the memory cache; memcached refuses the same values. Returns nil
/// for a missing key, the new value as a string, or an error reply `NOTNUM`.
pub(super) const COUNTER_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local header = tonumber(ARGV[3])
local digits = string.sub(v, header + 1)
local function notnum() return redis.error_reply('NOTNUM value is not an unsigned 64-bit decimal') end
if #v <= header or #digits > 20 or not string.find(digits, '^%d+$') then return notnum() end
local function strip(s) s = string.gsub(s, '^0+', '') if s == '' then return '0' end return s end
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
-- Twenty digits may still be past 2^64 - 1: such a value is not a counter (not wrapped).
if cmp(strip(digits), '18446744073709551615') > 0 then return notnum() end
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = carry + (i > 0 and tonumber(string.sub(a, i, i)) or 0) + (j > 0 and tonumber(string.sub(b, j, j)) or 0)
    table.insert(out, 1, tostring(s % 10)); carry = math.floor(s / 10); i = i - 1; j = j - 1
  end
  return strip(table.concat(out))
end
local function sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = tonumber(string.sub(a, i, i)) - borrow - (j > 0 and tonumber(string.sub(b, j, j)) or 0)
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    table.insert(out, 1, tostring(d)); i = i - 1; j = j - 1
  end
  return strip(table.concat(out))
end
local n, delta = strip(digits), strip(ARGV[1])
local r
if ARGV[2] == 'incr' then
  r = add(n, delta)
  local wrap = '18446744073709551616'
  if cmp(r, wrap) >= 0 then r = sub(r, wrap) end
else
  if cmp(n, delta) <= 0 then r = '0' else r = sub(n, delta) end
end
redis.call('SET', KEYS[1], string.sub(v, 1, header) .. r, 'KEEPTTL')
return r
"#;

/// `touch`: a new expiry for an existing key only (PERSIST alone cannot tell "no TTL" from
/// "no key").
pub(super) const TOUCH_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"#;

/// Release a lock only when it still holds our token (atomic on the server).
pub(super) const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
