//! `tell patch --model M --source S.jsonl --target T.jsonl --metric logit-diff:A,B --out DIR`.

use std::path::PathBuf;

use anyhow::Result;
use tell_intervene::{run_patch, PatchOptions};
use tell_llama::CpuBackend;

/// Arguments of `tell patch`.
#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// Source prompts (JSONL, as for capture): line i patches line i of --target.
    #[arg(long)]
    source: PathBuf,
    /// Target prompts (JSONL).
    #[arg(long)]
    target: PathBuf,
    /// Block sites to patch: resid_post, resid_pre, resid_mid, attn_out, mlp_out.
    #[arg(long, value_delimiter = ',', default_value = "resid_post")]
    sites: Vec<String>,
    /// Layers: all, or e.g. 0,4,8-12.
    #[arg(long, default_value = "all")]
    layers: String,
    /// logit-diff:A,B at the last position: token ids or single-token strings.
    #[arg(long)]
    metric: String,
    /// Output directory (patch.csv).
    #[arg(long)]
    out: PathBuf,
    /// Patched copies of a target per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Encode `text` prompts raw instead of rendering the chat template.
    #[arg(long)]
    raw: bool,
    /// A system message for `text` prompts rendered as chats.
    #[arg(long)]
    system: Option<String>,
}

/// Writes the patching maps and prints where each pair's metric is restored most.
pub fn run(args: Args) -> Result<()> {
    let opts = PatchOptions {
        sites: args.sites,
        layers: Some(args.layers),
        metric: args.metric,
        batch_size: args.batch_size,
        chat: !args.raw,
        system: args.system,
    };
    let r = run_patch::<CpuBackend>(
        &args.model,
        &args.source,
        &args.target,
        &args.out,
        &opts,
        &Default::default(),
    )?;
    for (source, target, map) in &r.maps {
        let best = map
            .cells
            .iter()
            .filter(|c| c.restored.is_finite())
            .max_by(|a, b| a.restored.total_cmp(&b.restored));
        match best {
            Some(c) => eprintln!(
                "{source} -> {target}: metric {:.4} (target) vs {:.4} (source); most restored: \
                 blocks.{}.hook_{} position {} ({:.3})",
                map.target,
                map.source,
                c.layer,
                c.hook.short(),
                c.position,
                c.restored
            ),
            None => eprintln!(
                "{source} -> {target}: the metric is {:.4} on both runs: nothing to restore",
                map.target
            ),
        }
    }
    eprintln!("wrote {}", r.csv.display());
    Ok(())
}
