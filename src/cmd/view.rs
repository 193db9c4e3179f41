//! `tell view RUN --out page.html [--probe NAME]`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tell_view::{render_run, ViewOptions};

/// Arguments of `tell view`.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory written by `tell run` (with `--monitor`, tokens are coloured).
    run: PathBuf,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
    /// The monitor probe whose scores colour the tokens (default: the first).
    #[arg(long)]
    probe: Option<String>,
}

/// Writes the page and says what it shows.
pub fn run(args: Args) -> Result<()> {
    let view = render_run(&args.run, &ViewOptions { probe: args.probe })?;
    std::fs::write(&args.out, &view.html)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "{} responses, {} coloured tokens{} -> {}",
        view.responses,
        view.tokens,
        match &view.probe {
            Some(p) => format!(" (probe {p}, threshold {:.4})", view.threshold),
            None => " (no monitor)".into(),
        },
        args.out.display()
    );
    Ok(())
}
