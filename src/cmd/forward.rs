//! `tell forward MODEL --tokens 1,2,3 [--device cuda] [--compute-dtype bf16] [--edit ...]`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{run_on, Batch, Edits, Llama, Logits, OnDevice, RowEdit};

use super::device::DeviceArgs;
use super::intervene::EditArgs;

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
    edits: EditArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The forward pass on whichever backend `--device` names: the last position's logits.
struct Forward<'a> {
    model: &'a PathBuf,
    tokens: &'a [u32],
    edits: &'a EditArgs,
}

impl OnDevice for Forward<'_> {
    type Output = Result<Vec<f32>>;

    fn run<B: Backend>(self, device: &B::Device) -> Result<Vec<f32>> {
        let model = Llama::<B>::load(self.model, device)?;
        let batch = Batch::left_padded(&[self.tokens.to_vec()], 0)?;
        let intervention = self.edits.resolve(model.config())?;
        if intervention.as_ref().is_some_and(|iv| iv.patches()) {
            bail!(
                "a patch edit needs source values: use `tell patch`, or `tell generate --patch-from`"
            );
        }
        let rows = [RowEdit {
            prompt_len: self.tokens.len(),
            ..Default::default()
        }];
        let edits = intervention.as_ref().map(|iv| Edits {
            intervention: iv,
            rows: &rows,
        });
        let out = model.forward_with(&batch, &[], Logits::Last, edits)?;
        out.logits
            .context("the model returned no logits")?
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))
    }
}

/// Runs one sequence and prints the most likely next tokens.
pub fn run(args: Args) -> Result<()> {
    let (spec, dtype) = args.device.parse()?;
    let task = Forward {
        model: &args.model,
        tokens: &args.tokens,
        edits: &args.edits,
    };
    let logits = run_on(spec, dtype, task)??;
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
