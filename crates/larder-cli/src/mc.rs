//! `larder get|set|add|delete|incr|decr|touch|stats|flush`: memcached operator tools on the
//! blocking [`Client`].
//!
//! Exit codes: 0 on success, 1 when a key was missing (or a conditional write did not
//! apply), 2 on errors, which are printed as one line `larder: error: ...`.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine as _;
use clap::{Args, Subcommand};
use larder::codec::{BytesCodec, FLAG_U64};
use larder::memcache::{Client, ClientConfig, Distribution, KeyHash};
use larder::redis::{RedisCache, RedisConfig};
use larder::Expiry;

/// What `set` and `add` store, and where.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The key.
    key: String,
    /// The value; stdin when absent.
    value: Option<String>,
    /// Time to live in seconds (none: never expires).
    #[arg(long)]
    ttl: Option<u64>,
    /// Client flags stored with the value.
    #[arg(long, default_value_t = 0)]
    flags: u32,
    #[command(flatten)]
    servers: ServerArgs,
}

/// Which servers to talk to.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Comma-separated `HOST:PORT[:WEIGHT]` (IPv6 as `[ADDR]:PORT`) or Unix socket paths.
    #[arg(long, default_value = "127.0.0.1:11211")]
    pub servers: String,
    /// Key placement: ketama | ketama-weighted | modula | pymemcache | python-memcached.
    #[arg(long, default_value = "ketama")]
    pub distribution: Distribution,
    /// Key hash for ketama and modula: one-at-a-time | md5 | crc.
    #[arg(long, default_value = "one-at-a-time")]
    pub hash: KeyHash,
    /// Connect/read/write timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// The memcached subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum McCommand {
    /// Prints `KEY<TAB>VALUE` per hit; misses go to stderr (exit 1 if any key missed).
    Get {
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        servers: ServerArgs,
    },
    /// Stores a value (read from stdin as exact bytes when VALUE is absent).
    Set(StoreArgs),
    /// Stores a value only when the key is absent (exit 1 when present).
    Add(StoreArgs),
    /// Deletes a key (exit 1 when it was absent).
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        servers: ServerArgs,
    },
    /// Increments a counter and prints the new value (exit 1 when absent).
    Incr {
        /// The key.
        key: String,
        /// The amount.
        #[arg(default_value_t = 1)]
        delta: u64,
        #[command(flatten)]
        servers: ServerArgs,
    },
    /// Decrements a counter (stopping at 0) and prints the new value (exit 1 when absent).
    Decr {
        /// The key.
        key: String,
        /// The amount.
        #[arg(default_value_t = 1)]
        delta: u64,
        #[command(flatten)]
        servers: ServerArgs,
    },
    /// Gives a key a new time to live (exit 1 when absent).
    Touch {
        /// The key.
        key: String,
        /// Time to live in seconds (none: never expires).
        #[arg(long)]
        ttl: Option<u64>,
        #[command(flatten)]
        servers: ServerArgs,
    },
    /// Prints `SERVER<TAB>NAME<TAB>VALUE` for every statistic of every server, including the
    /// client's view of each (`larder:state` alive/dead, failure counts, `larder:error`).
    Stats {
        /// A stats group (`settings`, `slabs`, `items`, ...).
        group: Option<String>,
        #[command(flatten)]
        servers: ServerArgs,
        /// Ask this Redis server instead (`redis://HOST:PORT`): prints its `INFO`.
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
    },
    /// Invalidates every item on every listed server (`flush_all`).
    Flush {
        #[command(flatten)]
        servers: ServerArgs,
    },
}

fn client(args: &ServerArgs) -> larder::Result<Client> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let config = ClientConfig::from_specs(&args.servers)?
        .distribution(args.distribution)
        .key_hash(args.hash)
        .io_timeout(timeout)
        .connect_timeout(timeout);
    Client::new(config)
}

fn expiry(ttl: Option<u64>) -> Expiry {
    ttl.map_or(Expiry::Never, Expiry::secs)
}

fn value_bytes(value: Option<String>) -> larder::Result<Vec<u8>> {
    match value {
        Some(v) => Ok(v.into_bytes()),
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            Ok(buf)
        }
    }
}

/// How a value is printed: decimal for counters, text as is, base64 otherwise.
pub fn display_value(data: &[u8], flags: u32) -> String {
    if flags == FLAG_U64 {
        if let Ok(text) = std::str::from_utf8(data) {
            let digits = text.trim_end();
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return digits.to_owned();
            }
        }
    }
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(data)
        ),
    }
}

/// Runs one memcached subcommand; returns the process exit code.
pub fn run(cmd: McCommand) -> i32 {
    match execute(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("larder: error: {e}");
            2
        }
    }
}

fn found(ok: bool, key: &str, what: &str) -> i32 {
    if ok {
        0
    } else {
        eprintln!("{key}: {what}");
        1
    }
}

fn execute(cmd: McCommand) -> larder::Result<i32> {
    let mut out = std::io::stdout().lock();
    match cmd {
        McCommand::Get { keys, servers } => {
            let c = client(&servers)?;
            let hits = c.get_multi(&keys)?;
            let mut code = 0;
            for key in &keys {
                match hits.get(key.as_bytes()) {
                    Some(item) => {
                        writeln!(out, "{key}\t{}", display_value(item.value, item.flags))?
                    }
                    None => {
                        eprintln!("{key}: not found");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        McCommand::Set(a) => {
            let c = client(&a.servers)?;
            c.set(&a.key, &value_bytes(a.value)?, a.flags, expiry(a.ttl))?;
            Ok(0)
        }
        McCommand::Add(a) => {
            let c = client(&a.servers)?;
            let stored = c.add(&a.key, &value_bytes(a.value)?, a.flags, expiry(a.ttl))?;
            Ok(found(stored, &a.key, "already present, not stored"))
        }
        McCommand::Delete { key, servers } => {
            let deleted = client(&servers)?.delete(&key)?;
            Ok(found(deleted, &key, "not found"))
        }
        McCommand::Incr {
            key,
            delta,
            servers,
        } => arith(&mut out, &client(&servers)?.incr(&key, delta)?, &key),
        McCommand::Decr {
            key,
            delta,
            servers,
        } => arith(&mut out, &client(&servers)?.decr(&key, delta)?, &key),
        McCommand::Touch { key, ttl, servers } => {
            let touched = client(&servers)?.touch(&key, expiry(ttl))?;
            Ok(found(touched, &key, "not found"))
        }
        McCommand::Stats {
            redis: Some(url), ..
        } => {
            let config = RedisConfig::new(url.as_str());
            let cache = RedisCache::new(config, BytesCodec)?;
            let mut stats: Vec<_> = cache.server_stats()?.into_iter().collect();
            stats.sort();
            for (name, value) in stats {
                writeln!(out, "{url}\t{name}\t{value}")?;
            }
            Ok(0)
        }
        McCommand::Stats { group, servers, .. } => {
            let all = client(&servers)?.stats_group(group.as_deref())?;
            let mut names: Vec<_> = all.keys().cloned().collect();
            names.sort();
            for server in names {
                let mut stats: Vec<_> = all[&server].iter().collect();
                stats.sort();
                for (name, value) in stats {
                    writeln!(out, "{server}\t{name}\t{value}")?;
                }
            }
            Ok(0)
        }
        McCommand::Flush { servers } => {
            client(&servers)?.flush_all()?;
            Ok(0)
        }
    }
}

fn arith(out: &mut impl Write, value: &Option<u64>, key: &str) -> larder::Result<i32> {
    match value {
        Some(v) => {
            writeln!(out, "{v}")?;
            Ok(0)
        }
        None => Ok(found(false, key, "not found")),
    }
}
