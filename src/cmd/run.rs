//! `tell run SUITE --model MODEL --out RUN [--limit N] [--max-new-tokens N] [--batch-size N]
//! [--resume] [--force] [--device cuda] [--edit ...]`: every stage of a suite, chained
//! (tell_run::run_suite).

use std::path::PathBuf;

use anyhow::Result;
use tell_run::{run_suite, Event, RunOptions};

/// Arguments of `tell run`.
#[derive(clap::Args)]
pub struct Args {
    /// The suite file (e.g. probes/alignment-faking/suite.toml).
    suite: PathBuf,
    /// A checkpoint directory or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// The run directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Keep at most N queries of each query set.
    #[arg(long)]
    limit: Option<usize>,
    /// Override the suite's generation.max_new_tokens.
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Prompts per batch (generation and capture).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Continue the run in --out: stages whose outputs exist are skipped.
    #[arg(long)]
    resume: bool,
    /// Replace the run (of any suite) that --out holds.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Probe directories that score every generated token during decoding (monitor.jsonl), with
    /// their response-level AUROC per condition and tier in monitor.csv and the report.
    #[arg(long, value_delimiter = ',', value_name = "PROBE")]
    monitor: Vec<PathBuf>,
    /// Responses the monitor's 1% false-positive threshold is set on: COLUMN=VALUE of scores.csv
    /// (kind, condition, tier, query_id, id, class).
    #[arg(long, visible_alias = "control-where", default_value = "kind=benign")]
    monitor_control: String,
    /// Run only part INDEX of COUNT of the prompts (generation and capture); the tables come
    /// from a run with --merge over the parts.
    #[arg(long, value_name = "INDEX/COUNT", conflicts_with = "merge")]
    shard: Option<String>,
    /// Shard runs (directories of `tell run --shard`) to join and score as one run.
    #[arg(long, value_name = "SHARD_RUN", num_args = 1..)]
    merge: Vec<PathBuf>,
    #[command(flatten)]
    device: super::device::DeviceArgs,
    /// Edits applied in generation and capture alike (a run under an intervention).
    #[command(flatten)]
    edits: super::intervene::PatchEditArgs,
}

/// Runs the suite and prints where the report is.
pub fn run(args: Args) -> Result<()> {
    let (device, precision) = args.device.parse()?;
    // Edits are resolved against the model's shape; without edits run_suite checks the inputs.
    let intervention = if args.edits.is_empty() {
        None
    } else {
        for (what, path) in [("suite", &args.suite), ("model", &args.model)] {
            if !path.exists() {
                anyhow::bail!("{what} {} does not exist", path.display());
            }
        }
        let config = tell_llama::Checkpoint::open(&args.model)?.config;
        args.edits.resolve(&config)?.map(std::sync::Arc::new)
    };
    let opts = RunOptions {
        limit: args.limit,
        max_new_tokens: args.max_new_tokens,
        batch_size: args.batch_size,
        resume: args.resume,
        force: args.force,
        device,
        precision,
        intervention,
        patch_from: args.edits.patch_from.clone(),
        monitor: args.monitor.clone(),
        monitor_control: tell_run::monitor::Control::parse(&args.monitor_control)?,
        shard: args
            .shard
            .as_deref()
            .map(tell_store::Split::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        merge: args.merge.clone(),
    };
    let start = std::time::Instant::now();
    let report = run_suite(&args.suite, &args.model, &args.out, &opts, &mut |e| {
        print_event(start, e)
    })?;
    println!("report: {}", report.report.display());
    Ok(())
}

/// Prints one progress event of a run to stderr, with the seconds since `start`.
pub fn print_event(start: std::time::Instant, e: Event) {
    let t = start.elapsed().as_secs_f64();
    match e {
        Event::Started(s) => eprintln!("[{t:>6.0}s] {} ...", s.name()),
        Event::Finished(s, m) => eprintln!("[{t:>6.0}s] {}: {m}", s.name()),
        Event::Skipped(s, m) => eprintln!("[{t:>6.0}s] {}: skipped: {m}", s.name()),
        Event::Generating {
            done,
            total,
            new_tokens,
        } => eprintln!("[{t:>6.0}s] generate: {done}/{total} responses, {new_tokens} new tokens"),
    }
}
