//! `tell forward MODEL --tokens 1,2,3`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tell_llama::{Batch, CpuBackend, Llama, Logits};

/// Arguments of `tell forward`.
#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory (config.json + safetensors) or a .gguf file.
    model: PathBuf,
    /// Comma-separated token ids.
    #[arg(long, value_delimiter = ',', required = true)]
    tokens: Vec<u32>,
    /// How many of the most likely next tokens to print.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs one sequence and prints the most likely next tokens.
pub fn run(args: Args) -> Result<()> {
    let device = Default::default();
    let model = Llama::<CpuBackend>::load(&args.model, &device)?;
    let batch = Batch::left_padded(std::slice::from_ref(&args.tokens), 0)?;
    let out = model.forward(&batch, &[], Logits::Last)?;
    let logits = out
        .logits
        .context("the model returned no logits")?
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let mut ranked: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(args.top);
    if args.json {
        let rows: Vec<_> = ranked
            .iter()
            .map(|(t, l)| serde_json::json!({"token": t, "logit": l}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:>8}  logit", "token");
        for (t, l) in ranked {
            println!("{t:>8}  {l:.5}");
        }
    }
    Ok(())
}
