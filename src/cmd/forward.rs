//! `tell forward MODEL --tokens 1,2,3 [--edit ...]`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tell_llama::{Batch, CpuBackend, Edits, Llama, Logits, RowEdit};

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
    #[command(flatten)]
    edits: super::intervene::EditArgs,
}

/// Runs one sequence and prints the most likely next tokens.
pub fn run(args: Args) -> Result<()> {
    let device = Default::default();
    let model = Llama::<CpuBackend>::load(&args.model, &device)?;
    let batch = Batch::left_padded(std::slice::from_ref(&args.tokens), 0)?;
    let intervention = args.edits.resolve(model.config())?;
    if intervention.as_ref().is_some_and(|iv| iv.patches()) {
        bail!(
            "a patch edit needs source values: use `tell patch`, or `tell generate --patch-from`"
        );
    }
    let rows = [RowEdit {
        prompt_len: args.tokens.len(),
        ..Default::default()
    }];
    let edits = intervention.as_ref().map(|iv| Edits {
        intervention: iv,
        rows: &rows,
    });
    let out = model.forward_with(&batch, &[], Logits::Last, edits)?;
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
