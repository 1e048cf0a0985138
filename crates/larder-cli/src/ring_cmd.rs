//! `larder ring KEY... --servers ...`: which server each key maps to, computed locally with
//! the same placement as pylibmc, pymemcache or python-memcached (no network).

use clap::Args;
use larder::memcache::ring::{Distribution, KeyHash, Ring};

/// Arguments of `larder ring`.
#[derive(Args, Debug)]
pub struct RingArgs {
    /// Keys to place.
    #[arg(required = true)]
    pub keys: Vec<String>,
    /// Servers as HOST:PORT[:WEIGHT] (IPv6 as [ADDR]:PORT, or a Unix socket path), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// ketama | ketama-weighted | modula | pymemcache | python-memcached.
    #[arg(long, default_value = "ketama")]
    pub distribution: Distribution,
    /// Key hash for ketama and modula: one-at-a-time | md5 | crc.
    #[arg(long, default_value = "one-at-a-time")]
    pub hash: KeyHash,
}

/// Prints `KEY<TAB>SERVER` for each key.
pub fn run(args: &RingArgs) -> Result<(), String> {
    let ring =
        Ring::from_specs(&args.servers, args.distribution, args.hash).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for key in &args.keys {
        let index = ring
            .server_for(key.as_bytes())
            .ok_or_else(|| "no server to place keys on".to_string())?;
        out.push_str(&format!("{key}\t{}\n", ring.servers()[index].addr));
    }
    print!("{out}");
    Ok(())
}
