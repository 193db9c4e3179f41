//! `tell stats fisher 15/98 4/96 [--json]` and `tell stats behavior scores.csv --out behavior.csv`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tell_faking::stats::compare;
use tell_faking::{behavior_table, read_scores, write_csv};

/// Arguments of `tell stats`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Fisher's exact test, rates with Wilson intervals, gap (Newcombe) and odds ratio (Woolf)
    /// for complied/total when monitored vs when unmonitored.
    Fisher(FisherArgs),
    /// The behavior table of a scores file: one row per condition.
    Behavior(BehaviorArgs),
}

#[derive(clap::Args)]
struct FisherArgs {
    /// Complied/total in the monitored tier, e.g. 15/98.
    monitored: String,
    /// Complied/total in the unmonitored tier, e.g. 4/96.
    unmonitored: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BehaviorArgs {
    /// Scores (CSV from `tell score`).
    scores: PathBuf,
    /// Where to write the behavior table (CSV).
    #[arg(long)]
    out: PathBuf,
    /// Print the table as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `tell stats ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Fisher(a) => fisher(a),
        Sub::Behavior(a) => behavior(a),
    }
}

/// Parses `K/N` with K <= N.
fn counts(s: &str) -> Result<(u64, u64)> {
    let (k, n) = s
        .split_once('/')
        .with_context(|| format!("`{s}`: expected complied/total, e.g. 15/98"))?;
    let k: u64 = k
        .trim()
        .parse()
        .with_context(|| format!("`{s}`: bad count `{k}`"))?;
    let n: u64 = n
        .trim()
        .parse()
        .with_context(|| format!("`{s}`: bad total `{n}`"))?;
    if k > n {
        bail!("`{s}`: complied {k} exceeds total {n}");
    }
    Ok((k, n))
}

fn fisher(a: FisherArgs) -> Result<()> {
    let (k1, n1) = counts(&a.monitored)?;
    let (k2, n2) = counts(&a.unmonitored)?;
    let c = compare(k1, n1, k2, n2).context("complied exceeds total")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    let or = &c.odds_ratio;
    println!(
        "monitored    {k1}/{n1} = {:.4}  Wilson 95% [{:.4}, {:.4}]",
        c.monitored.rate, c.monitored.ci.lower, c.monitored.ci.upper
    );
    println!(
        "unmonitored  {k2}/{n2} = {:.4}  Wilson 95% [{:.4}, {:.4}]",
        c.unmonitored.rate, c.unmonitored.ci.lower, c.unmonitored.ci.upper
    );
    println!(
        "gap          {:+.4}  Newcombe hybrid score 95% [{:+.4}, {:+.4}]",
        c.gap, c.gap_ci.lower, c.gap_ci.upper
    );
    println!("Fisher exact p (two-sided) = {:.6}", c.fisher_p);
    println!(
        "odds ratio   {:.4}  Woolf 95% [{:.4}, {:.4}]{}",
        or.estimate,
        or.ci.lower,
        or.ci.upper,
        if or.haldane {
            "  (Haldane +0.5: a cell is zero)"
        } else {
            ""
        }
    );
    Ok(())
}

fn behavior(a: BehaviorArgs) -> Result<()> {
    let scores = read_scores(&a.scores)?;
    let table = behavior_table(&scores);
    write_csv(&a.out, &table)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&table)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>10} {:>10} {:>8} {:>10} {:>8} {:>8}",
        "condition", "monitored", "unmonit.", "gap", "p", "OR", "unclear"
    );
    for r in &table {
        println!(
            "{:<24} {:>10} {:>10} {:>+8.3} {:>10.4} {:>8.2} {:>8}",
            match r.kind.as_str() {
                "" | "harmful" => r.condition.clone(),
                k => format!("{} [{k}]", r.condition),
            },
            format!(
                "{}/{}",
                r.monitored_complied,
                r.monitored_complied + r.monitored_refused
            ),
            format!(
                "{}/{}",
                r.unmonitored_complied,
                r.unmonitored_complied + r.unmonitored_refused
            ),
            r.gap,
            r.fisher_p,
            r.odds_ratio,
            r.monitored_unclear + r.unmonitored_unclear
        );
    }
    println!("-> {}", a.out.display());
    Ok(())
}
