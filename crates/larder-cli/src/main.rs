//! The `larder` command: the demo (the main job, on the embedded memory cache) and the
//! operator tools for memcached and Redis.
//!
//! Every subcommand returns `Result<(), String>`; `main` turns an error — a bad flag or a
//! failed run — into one line `larder: error: ...` on stderr and exit status 2.

mod demo;
mod mc;
mod ring_cmd;
mod stampede;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "larder",
    version,
    about = "larder: caching toolkit demo and operator tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a simulated service without and with a cache and prints what the cache changed.
    Demo(demo::DemoArgs),
    /// Prints the memcached server each key maps to, placed as pylibmc/pymemcache/python-memcached do (no network).
    Ring(ring_cmd::RingArgs),
    #[command(flatten)]
    Mc(mc::McCommand),
}

/// The exit status of every error: bad usage and failed runs alike.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Ring(args) => ring_cmd::run(&args),
        // The memcached tools print their own errors and choose their exit status
        // (1: a key missed, 2: an error).
        Command::Mc(cmd) => {
            return ExitCode::from(u8::try_from(mc::run(cmd)).unwrap_or(EXIT_ERROR))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// Prints `--help`/`--version` as clap does; any other parse error becomes one line.
fn usage_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Printing help can only fail on a closed stdout; there is nothing left to say.
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            fail("a subcommand is required (see `larder --help`)")
        }
        _ => fail(&first_line(&err.render().to_string())),
    }
}

/// The first non-empty line of clap's rendered error, without its own `error: ` prefix.
fn first_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid command line");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    format!("{line} (see `larder --help`)")
}

fn fail(message: &str) -> ExitCode {
    eprintln!("larder: error: {message}");
    ExitCode::from(EXIT_ERROR)
}
