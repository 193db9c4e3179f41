//! `tell score RESPONSES.jsonl --prompts prompts.jsonl --out scores.csv [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use tell_faking::{score_file, write_csv, Class};

/// Arguments of `tell score`.
#[derive(clap::Args)]
pub struct Args {
    /// Generated responses (JSONL: id, response).
    responses: PathBuf,
    /// The prompts the responses answer (JSONL from `tell suite render`).
    #[arg(long)]
    prompts: PathBuf,
    /// Where to write the scores (CSV).
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// Scores every response and writes scores.csv.
pub fn run(args: Args) -> Result<()> {
    let rows = score_file(&args.responses, &args.prompts)?;
    write_csv(&args.out, &rows)?;
    let count = |c: Class| rows.iter().filter(|r| r.class == c).count();
    let (c, r, u) = (
        count(Class::Complied),
        count(Class::Refused),
        count(Class::Unclear),
    );
    if args.json {
        let summary = serde_json::json!({
            "out": args.out, "responses": rows.len(),
            "complied": c, "refused": r, "unclear": u,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "scored {} responses: {c} complied, {r} refused, {u} unclear -> {}",
            rows.len(),
            args.out.display()
        );
    }
    Ok(())
}
