//! The `larder` command: the demo (the main job, on the embedded memory cache) and the
//! operator tools for memcached and Redis.

use clap::{Parser, Subcommand};

mod mc;
mod stampede;

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
    /// Runs the simulated service with and without a cache and prints a table.
    Demo,
    /// The dogpile stampede scene (temporary; to be wired as `demo --scene stampede`).
    #[command(hide = true)]
    Stampede,
    #[command(flatten)]
    Mc(mc::McCommand),
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => println!("demo: not built yet"),
        Command::Stampede => {
            if let Err(err) = stampede::run(64, std::time::Duration::from_secs(5)) {
                eprintln!("stampede: {err}");
                std::process::exit(1);
            }
        }
        Command::Mc(cmd) => std::process::exit(mc::run(cmd)),
    }
}
