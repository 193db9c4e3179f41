//! `tell suite render SUITE --out prompts.jsonl [--limit N] [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use tell_faking::{render_suite_with, write_prompts, RenderOptions};

/// Arguments of `tell suite`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Render every query x condition x tier of a suite as chat prompts (JSONL).
    Render(RenderArgs),
}

/// Arguments of `tell suite render`.
#[derive(clap::Args)]
struct RenderArgs {
    /// The suite file (suite.toml).
    suite: PathBuf,
    /// Where to write the prompts (JSONL).
    #[arg(long)]
    out: PathBuf,
    /// Keep at most N queries of each query set.
    #[arg(long)]
    limit: Option<usize>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `tell suite ...`.
pub fn run(args: Args) -> Result<()> {
    let Sub::Render(a) = args.command;
    let lines = render_suite_with(&a.suite, &RenderOptions { limit: a.limit })?;
    write_prompts(&a.out, &lines)?;
    let mut conditions: Vec<&str> = lines.iter().map(|l| l.condition.as_str()).collect();
    conditions.dedup();
    if a.json {
        let summary = serde_json::json!({
            "out": a.out, "prompts": lines.len(), "conditions": conditions,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote {} prompts ({} conditions: {}) to {}",
            lines.len(),
            conditions.len(),
            conditions.join(", "),
            a.out.display()
        );
    }
    Ok(())
}
