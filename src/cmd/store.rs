//! `tell store info|verify|export DIR` and `tell store merge SHARD... --out DIR`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tell_store::{export_npy, verify, Store};

/// Arguments of `tell store`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Summary of a store: model, sites, layers, positions, records, shards.
    Info {
        /// The store directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recompute checksums and cross-check manifest, shards and records.csv.
    Verify {
        /// The store directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export to numpy: one .npy per site/layer (+ offsets.npy for `all`) and records.csv.
    Export {
        /// The store directory.
        dir: PathBuf,
        /// Export format (only npy).
        #[arg(long, default_value = "npy")]
        format: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Join the stores of a split capture (`--shard i/n`) into one store in prompt order; every
    /// shard must be complete, of the same capture, and each part given once.
    Merge {
        /// The shard stores, in any order.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// The merged store to write.
        #[arg(long)]
        out: PathBuf,
        /// Replace a store in --out.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `tell store ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Merge { shards, out, force } => {
            let r = tell_store::merge(&shards, &out, force)?;
            eprintln!(
                "merged {} shards, {} records -> {}",
                r.shards,
                r.records,
                r.dir.display()
            );
        }
        Sub::Info { dir, json } => {
            let info = Store::open(&dir)?.info();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            let sites: Vec<String> = info
                .sites
                .iter()
                .map(|s| format!("{} (d {})", s.name, s.d))
                .collect();
            println!("store       {}", info.dir.display());
            println!("model       {}", info.model);
            println!("sites       {}", sites.join(", "));
            println!("layers      {:?}", info.layers);
            println!("positions   {}", info.positions);
            println!("dtype       {}", info.dtype);
            println!(
                "records     {} ({} tokens, {} response tokens)",
                info.records, info.tokens, info.response_tokens
            );
            println!("shards      {} ({} bytes)", info.shards, info.shard_bytes);
            println!("columns     {}", info.extra_columns.join(", "));
            println!(
                "complete    {}",
                if info.complete {
                    "yes"
                } else {
                    "no (--resume continues it)"
                }
            );
            println!("written by  {}", info.tool_version);
        }
        Sub::Verify { dir, json } => {
            let report = verify(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.problems {
                    println!("problem: {p}");
                }
                println!(
                    "{}: {} records, {} shards, {} bytes checked, {} problem(s)",
                    report.dir.display(),
                    report.records,
                    report.shards,
                    report.bytes,
                    report.problems.len()
                );
            }
            if !report.is_ok() {
                bail!("{}: the store has problems", dir.display());
            }
        }
        Sub::Export { dir, format, out } => {
            if format != "npy" {
                bail!("unknown export format {format:?} (only npy)");
            }
            let report = export_npy(&dir, &out)?;
            for f in &report.files {
                println!("{}", f.display());
            }
            eprintln!("exported {} records to {}", report.records, out.display());
        }
    }
    Ok(())
}
