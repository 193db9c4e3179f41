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
    /// Run the main job on the checkpoint shipped in the repository (offline, no flags needed).
    Demo(cmd::demo::Args),
    /// Describe a model checkpoint: architecture, parameters, dtypes, shards, tokenizer.
    Inspect(cmd::inspect::Args),
    /// Run a model on token ids and print the next-token prediction (a smoke test of a checkpoint).
    Forward(cmd::forward::Args),
    /// Experiment suites: `tell suite render SUITE --out prompts.jsonl`.
    Suite(cmd::suite::Args),
    /// Classify responses as complied / refused / unclear and write scores.csv.
    Score(cmd::score::Args),
    /// Statistics: Fisher's exact test on two counts, or the behavior table of a scores file.
    Stats(cmd::stats::Args),
    /// Per-query faking labels (shallow / deep) across conditions, from scores.csv.
    Labels(cmd::labels::Args),
    /// Linear probes per layer: `tell probe train|compare|apply`.
    Probe(cmd::probe::Args),
    /// Capture activations of a prompt set into an activation store (sites x layers x positions).
    Capture(cmd::capture::Args),
    /// Activation stores: `tell store info|verify|export DIR`.
    Store(cmd::store::Args),
    /// Token ids and token strings of a text (or of its rendered chat template).
    Tokenize(cmd::tokenize::Args),
    /// Generate responses for one prompt or a JSONL file of prompts (KV cache, greedy or sampled).
    Generate(cmd::generate::Args),
    /// Activation patching maps: per site, layer and position, the fraction of a logit
    /// difference that patching one value from a source prompt into its target restores.
    Patch(cmd::patch::Args),
    /// Steering, ablation or noise sweeps over a suite, scored as behavior tables per setting.
    Steer(cmd::steer::Args),
    /// A run's responses as one static HTML page, tokens coloured by a monitor probe's scores.
    View(cmd::view::Args),
    /// Run a suite end to end: render, generate, score, stats, labels, capture, probes, report.md.
    Run(cmd::run::Args),
    /// The planted model organism: `tell organism corpus|train`.
    Organism(cmd::organism::Args),
}

/// Tells glibc's allocator to keep and reuse freed memory instead of handing it back to the kernel.
///
/// Why: a forward allocates the same large buffers layer after layer (8 x 512 tokens: 50 MB for
/// the gate/up product). Above glibc's mmap threshold (32 MB at most) each one is a fresh mapping,
/// and below it the top of the heap is trimmed after each free; either way every layer faults its
/// pages in again and the kernel zeroes them (1.15 M minor faults for a 32 x 512 GGUF capture).
/// Keeping freed memory in one arena takes that to about 120 k faults, is faster, and lowers the
/// peak (one arena instead of one per thread holding freed buffers); BENCHMARKS.md has the numbers.
/// `TELL_MALLOC=system` keeps glibc's defaults (to compare, or where memory must go back early).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("TELL_MALLOC").is_none_or(|v| v != "system") {
        // SAFETY: called first thing in main, before any thread exists or allocates much;
        // mallopt only sets allocator parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so a closed stdout (`tell ... | head`) surfaced as a write error or a
    // panic in println!; with the default action the process ends quietly, as `cat` would.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; it only resets one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Forward(args) => cmd::forward::run(args),
        Command::Suite(args) => cmd::suite::run(args),
        Command::Score(args) => cmd::score::run(args),
        Command::Stats(args) => cmd::stats::run(args),
        Command::Labels(args) => cmd::labels::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Capture(args) => cmd::capture::run(args),
        Command::Store(args) => cmd::store::run(args),
        Command::Tokenize(args) => cmd::tokenize::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Patch(args) => cmd::patch::run(args),
        Command::Steer(args) => cmd::steer::run(args),
        Command::View(args) => cmd::view::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Organism(args) => cmd::organism::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
