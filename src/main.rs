//! `tell`: find the tells of alignment faking inside LLaMA-family models.
//!
//! This binary only parses arguments, calls the crates and reports errors; each subcommand lives
//! in `src/cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(name = "tell", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a model checkpoint: architecture, parameters, dtypes, shards, tokenizer.
    Inspect(cmd::inspect::Args),
    /// Run a model on token ids and print the next-token prediction (a smoke test of a checkpoint).
    Forward(cmd::forward::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Forward(args) => cmd::forward::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
