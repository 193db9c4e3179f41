//! `tell demo`: the main job, offline and without flags: the whole experiment (`tell run`) on the
//! model organism shipped in `checkpoints/organism`, with the organism's suite of held-out
//! queries, and the report's findings printed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tell_run::{run_suite, RunOptions};

use super::run::print_event;

/// Arguments of `tell demo`.
#[derive(clap::Args)]
pub struct Args {
    /// The run directory to write (replaced if it holds an earlier run).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Checkpoint to run (defaults to the organism shipped in the repo).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Suite to run (defaults to the organism's suite of held-out queries).
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Print the run summary as JSON instead of the report.
    #[arg(long)]
    json: bool,
}

/// A file shipped in the repository: under the working directory when run from a checkout, else
/// in the source tree the binary was built from (a binary can outlive or leave its build tree, and
/// one target directory may serve several clones).
fn repo(path: &str) -> Result<PathBuf> {
    let here = PathBuf::from(path);
    if here.exists() {
        return Ok(here);
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    if built.exists() {
        return Ok(built);
    }
    anyhow::bail!(
        "{path} is in neither the working directory nor {}: run `tell demo` from a checkout of \
         tell, or name the files with --model and --suite",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs the demo.
pub fn run(args: Args) -> Result<()> {
    let model = match args.model {
        Some(m) => m,
        None => repo("checkpoints/organism")?,
    };
    let suite = match args.suite {
        Some(s) => s,
        None => repo("probes/organism/suite.toml")?,
    };
    eprintln!(
        "tell demo: suite {} on {} -> {}",
        suite.display(),
        model.display(),
        args.out.display()
    );
    let opts = RunOptions {
        force: true,
        ..RunOptions::default()
    };
    let start = std::time::Instant::now();
    let r = run_suite(&suite, &model, &args.out, &opts, &mut |e| {
        print_event(start, e)
    })?;
    if args.json {
        let depth: Vec<_> = r
            .depth
            .iter()
            .map(|d| {
                serde_json::json!({
                    "mitigation": d.mitigation, "baseline": d.baseline,
                    "shallow": d.shallow, "deep": d.deep,
                    "probe": outcome(&d.probe),
                    "control": d.control.iter().map(|r| r.auroc).collect::<Vec<_>>(),
                    "control_mean": d.control_auroc().map(|c| c.0),
                })
            })
            .collect();
        let v = serde_json::json!({
            "out": r.out, "report": r.report, "prompts": r.prompts, "records": r.records,
            "behavior": r.behavior, "labels": r.labels.len(),
            "probe": outcome(&r.probes), "depth": depth,
            "seconds": start.elapsed().as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let md = std::fs::read_to_string(&r.report)
        .with_context(|| format!("reading {}", r.report.display()))?;
    // The findings, without the list of files at the end.
    let findings = md.split("\n## Files").next().unwrap_or(&md);
    println!("{findings}");
    println!("report: {}", r.report.display());
    Ok(())
}

fn outcome(p: &tell_run::ProbeOutcome) -> serde_json::Value {
    match p {
        tell_run::ProbeOutcome::Trained { best, combinations } => {
            serde_json::json!({ "best": best, "combinations": combinations })
        }
        tell_run::ProbeOutcome::Skipped(why) => serde_json::json!({ "skipped": why }),
    }
}
