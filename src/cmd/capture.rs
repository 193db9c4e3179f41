//! `tell capture MODEL --prompts FILE.jsonl --out DIR [--sites ...] [--layers ...] [--positions ...]`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Result};
use tell_capture::{
    capture_on, interrupt_flag, CaptureError, CaptureOptions, CaptureReport, Outcome, Truncate,
};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{run_on, OnDevice};
use tell_store::{Positions, StoreDtype};

use super::device::DeviceArgs;

/// Arguments of `tell capture`.
#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory (config.json + safetensors) or a .gguf file.
    model: PathBuf,
    /// Prompt lines (JSONL): {"id", "tokens": [...]} | {"id", "text"} | {"id", "messages": [...]},
    /// optional "response" (text or token ids); other fields go to records.csv.
    #[arg(long)]
    prompts: PathBuf,
    /// The store directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Sites: resid_post, resid_pre, resid_mid, attn_out, mlp_out, ln_final, logits, or full
    /// names such as blocks.12.hook_resid_post.
    #[arg(long, value_delimiter = ',', default_value = "resid_post")]
    sites: Vec<String>,
    /// Layers: all, or e.g. 0,4,8-12 (default: all, or those named in full site names).
    #[arg(long)]
    layers: Option<String>,
    /// Positions: last, all, mean, response-mean or response-first.
    #[arg(long, default_value = "last")]
    positions: String,
    /// Sequences per forward pass (left-padded).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Stored dtype: f32, f16 or bf16 (values are rounded from the model's float type, which
    /// --compute-dtype sets).
    #[arg(long, visible_alias = "store-dtype", default_value = "f32")]
    dtype: String,
    #[command(flatten)]
    device: DeviceArgs,
    /// Continue the store in --out, skipping committed records.
    #[arg(long)]
    resume: bool,
    /// Replace a store of another model or layout in --out.
    #[arg(long)]
    force: bool,
    /// Records per shard (default 256).
    #[arg(long)]
    shard_records: Option<usize>,
    /// Encode `text` prompts raw instead of rendering the chat template (as for tell generate).
    #[arg(long)]
    raw: bool,
    /// A system message for `text` prompts rendered as chats.
    #[arg(long)]
    system: Option<String>,
    /// Over-long prompts: cut on the left (oldest prompt tokens) or right (end); default: error.
    #[arg(long)]
    truncate: Option<String>,
    /// Capture only part INDEX of COUNT of the prompts (contiguous runs of lines, the same for
    /// capture, generate and run); `tell store merge` joins the parts' stores.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    #[command(flatten)]
    edits: super::intervene::PatchEditArgs,
}

/// The capture on whichever backend `--device` names.
struct Capture<'a> {
    model: &'a Path,
    prompts: &'a Path,
    out: &'a Path,
    opts: &'a CaptureOptions,
    stop: &'a AtomicBool,
}

impl OnDevice for Capture<'_> {
    type Output = Result<CaptureReport, CaptureError>;

    fn run<B: Backend>(self, device: &B::Device) -> Self::Output {
        capture_on::<B>(
            self.model,
            self.prompts,
            self.out,
            self.opts,
            self.stop,
            device,
        )
    }
}

/// Runs the capture and prints a summary.
pub fn run(args: Args) -> Result<()> {
    let (spec, dtype) = args.device.parse()?;
    let config = tell_llama::Checkpoint::open(&args.model)?.config;
    let intervention = args.edits.resolve(&config)?.map(std::sync::Arc::new);
    let opts = CaptureOptions {
        sites: args.sites,
        layers: args.layers,
        positions: Positions::parse(&args.positions)?,
        batch_size: args.batch_size,
        dtype: StoreDtype::parse(&args.dtype)?,
        resume: args.resume,
        force: args.force,
        shard_records: args.shard_records,
        truncate: args.truncate.as_deref().map(Truncate::parse).transpose()?,
        window: None,
        chat: !args.raw,
        system: args.system,
        progress: true,
        args: serde_json::json!(std::env::args().collect::<Vec<_>>()),
        intervention,
        patch_from: args.edits.patch_from.clone(),
        shard: args
            .shard
            .as_deref()
            .map(tell_store::Split::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let stop = interrupt_flag()?;
    let task = Capture {
        model: &args.model,
        prompts: &args.prompts,
        out: &args.out,
        opts: &opts,
        stop: &stop,
    };
    let r = run_on(spec, dtype, task)??;
    eprintln!(
        "captured {} records ({} tokens) in {:.2} s: {:.1} tokens/s; {} holds {} of {} records",
        r.records - r.resumed_from,
        r.tokens,
        r.seconds,
        r.tokens_per_second(),
        r.dir.display(),
        r.records,
        r.prompts
    );
    if r.outcome == Outcome::Interrupted {
        bail!(
            "interrupted: {} of {} records are committed in {}; rerun the same command with \
             --resume to complete it",
            r.records,
            r.prompts,
            r.dir.display()
        );
    }
    Ok(())
}
