//! `tell demo`: the main job on a checkpoint shipped in the repository, offline and without flags.
//!
//! Until the model organism lands (issue 6), the demo runs the model core on the tiny shipped
//! LLaMA checkpoint: one left-padded batch of prompts of different lengths, every layer's
//! `hook_resid_post` captured, and each prompt checked against running it alone.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tell_llama::{Batch, CpuBackend, Llama, Logits, ModelInfo, Site};

/// Arguments of `tell demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint to run (defaults to the tiny LLaMA 3-style checkpoint shipped in the repo).
    #[arg(long)]
    model: Option<PathBuf>,
}

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/models/llama3-rope")
}

/// Runs the demo.
pub fn run(args: Args) -> Result<()> {
    let dir = args.model.unwrap_or_else(shipped);
    let info = ModelInfo::of(&dir)?;
    println!(
        "model {}: {} layers, d {}, {} q / {} kv heads, vocab {}, rope {}, {} parameters",
        dir.display(),
        info.layers,
        info.hidden_size,
        info.heads,
        info.kv_heads,
        info.vocab_size,
        info.rope_scaling,
        info.parameters
    );
    let device = Default::default();
    let model = Llama::<CpuBackend>::load(&dir, &device)?;
    let vocab = info.vocab_size as u32;
    let prompts: Vec<Vec<u32>> = [9usize, 4, 13]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            (0..n as u32)
                .map(|t| (t * 17 + i as u32 * 5 + 3) % vocab)
                .collect()
        })
        .collect();
    let sites: Vec<Site> = (0..info.layers).map(Site::resid_post).collect();
    let batch = Batch::left_padded(&prompts, 0)?;
    let together = model.forward(&batch, &sites, Logits::Last)?;
    println!(
        "\nbatch of {} prompts (lengths {:?}), left-padded to {} tokens",
        batch.size(),
        batch.lengths,
        batch.seq
    );
    println!("prompt  site                      |last token|  max |batch - alone|");
    let width = info.hidden_size;
    for (b, prompt) in prompts.iter().enumerate() {
        let alone = model.forward(
            &Batch::left_padded(std::slice::from_ref(prompt), 0)?,
            &sites,
            Logits::None,
        )?;
        for site in &sites {
            let got = rows(
                together.captures.get(site).context("captured")?,
                b,
                batch.seq,
                width,
            )?;
            let want = rows(
                alone.captures.get(site).context("captured")?,
                0,
                prompt.len(),
                width,
            )?;
            let start = (batch.start(b)) * width;
            let got = &got[start..];
            let diff = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, w)| m.max((a - w).abs()));
            let last = &got[got.len() - width..];
            let norm = last.iter().map(|v| v * v).sum::<f32>().sqrt();
            println!("{b:>6}  {site:<24}  {norm:>10.4}  {diff:.2e}");
        }
    }
    let logits = together
        .logits
        .context("logits")?
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (b, row) in logits.chunks(info.vocab_size).enumerate() {
        let (tok, _) = row
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        println!("prompt {b}: next token {tok}");
    }
    Ok(())
}

fn rows(
    t: &tell_llama::burn::tensor::Tensor<CpuBackend, 3>,
    b: usize,
    seq: usize,
    width: usize,
) -> Result<Vec<f32>> {
    let all = t
        .to_data()
        .to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(all[b * seq * width..(b + 1) * seq * width].to_vec())
}
