//! `tell generate MODEL (--prompt TEXT | --prompts FILE.jsonl --out FILE.jsonl) [options]`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tell_capture::{
    check_file, prompt_tokens, respond_file, respond_tokens, Monitor, PromptInput, RespondOptions,
};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{run_on, GenerateOptions, Llama, OnDevice};
use tell_tokenizer::Tokenizer;

/// Arguments of `tell generate`.
#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory (with tokenizer files) or a .gguf file.
    model: PathBuf,
    /// One prompt to answer.
    #[arg(long, conflicts_with = "prompts")]
    prompt: Option<String>,
    /// A system message for --prompt (chat mode).
    #[arg(long)]
    system: Option<String>,
    /// Feed --prompt (and `text` lines) as raw text instead of rendering the chat template.
    #[arg(long)]
    raw: bool,
    /// Render the chat template (the default; the opposite of --raw).
    #[arg(long, conflicts_with = "raw")]
    chat: bool,
    /// A JSONL file of prompts: `{"id", "messages"}`, `{"id", "text"}` or `{"id", "tokens"}`.
    #[arg(long, requires = "out")]
    prompts: Option<PathBuf>,
    /// Where --prompts' responses go (JSONL; every prompt field is carried through).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Most new tokens per response.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long)]
    top_p: Option<f32>,
    /// Keep only the k most likely tokens (at least 1; leave it out to keep every token).
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop a response at this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Prompts per batch for --prompts.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Print JSON (for --prompt).
    #[arg(long)]
    json: bool,
    /// Probe directories (from `tell probe train`) that score every generated token at their own
    /// site and layer, during decoding; scores go to OUT's `.monitor.jsonl` beside it.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PROBE",
        requires = "prompts"
    )]
    monitor: Vec<PathBuf>,
    /// Answer only part INDEX of COUNT of --prompts (contiguous runs of lines, the same for
    /// capture, generate and run).
    #[arg(long, value_name = "INDEX/COUNT", requires = "prompts")]
    shard: Option<String>,
    #[command(flatten)]
    device: super::device::DeviceArgs,
    #[command(flatten)]
    edits: super::intervene::PatchEditArgs,
}

/// Generates for one prompt or a file of prompts.
pub fn run(args: Args) -> Result<()> {
    // The sampler would read 0 as 1 (greedy), where other tools read `top_k = 0` as no limit.
    if args.top_k == Some(0) {
        bail!("--top-k must be at least 1 (leave it out to keep every token)");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.prompts.is_none() && args.prompt.is_none() {
        bail!("give --prompt TEXT, or --prompts FILE.jsonl --out FILE.jsonl");
    }
    // A bad prompts file (a malformed line, an id used twice) fails before the model loads,
    // which takes minutes for an 8B model.
    if let Some(prompts) = &args.prompts {
        check_file(prompts)?;
    }
    if let Some(s) = &args.shard {
        tell_store::Split::parse(s).map_err(anyhow::Error::msg)?;
    }
    let (spec, dtype) = args.device.parse()?;
    run_on(spec, dtype, Generate { args: &args })?
}

/// The generation on whichever backend `--device` names.
struct Generate<'a> {
    args: &'a Args,
}

impl OnDevice for Generate<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, device: &B::Device) -> Result<()> {
        let args = self.args;
        let tokenizer = Tokenizer::load(&args.model)
            .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
        let model = Llama::<B>::load(&args.model, device)?;
        let intervention = args.edits.resolve(model.config())?;
        if intervention.as_ref().is_some_and(|iv| iv.patches())
            && (args.edits.patch_from.is_none() || args.prompts.is_none())
        {
            bail!(
                "a patch edit needs source values: give --prompts with --patch-from FILE.jsonl \
                 (line i patches prompt i) or a store captured with --positions all"
            );
        }
        let opts = RespondOptions {
            generate: GenerateOptions {
                max_new_tokens: args.max_new_tokens,
                temperature: args.temperature,
                top_k: args.top_k,
                top_p: args.top_p,
                seed: args.seed,
                stop_tokens: Vec::new(),
                pad_token: tokenizer.eos_token_id().unwrap_or(0),
                intervention: intervention.map(std::sync::Arc::new),
                patches: None,
                first_index: 0,
            },
            stop_strings: args.stop.clone(),
            batch_size: args.batch_size,
            system: args.system.clone(),
            chat: !args.raw,
            patch_from: args.edits.patch_from.clone(),
            patch_model_hash: args.edits.patch_model_hash(&args.model)?,
            monitor: match (&args.out, args.monitor.is_empty()) {
                (Some(out), false) => Some((
                    std::sync::Arc::new(Monitor::load(&args.monitor, model.config())?),
                    monitor_path(out),
                )),
                _ => None,
            },
            shard: args
                .shard
                .as_deref()
                .map(tell_store::Split::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?,
        };
        if let (Some(prompts), Some(out)) = (&args.prompts, &args.out) {
            let bar = indicatif::ProgressBar::new_spinner();
            let start = std::time::Instant::now();
            let report = respond_file(&model, &tokenizer, prompts, out, &opts, |done, new| {
                let rate = new as f64 / start.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "{done} prompts, {new} new tokens, {rate:.1} tokens/s"
                ));
            })?;
            bar.finish_and_clear();
            eprintln!(
                "{} responses, {} new tokens in {:.3} s -> {}",
                report.prompts,
                report.new_tokens,
                start.elapsed().as_secs_f64(),
                out.display()
            );
            return Ok(());
        }
        let Some(text) = &args.prompt else {
            bail!("give --prompt TEXT, or --prompts FILE.jsonl --out FILE.jsonl");
        };
        let ids = prompt_tokens(
            &tokenizer,
            &PromptInput::Text(text.clone()),
            opts.chat,
            opts.system.as_deref(),
        )?;
        let response = respond_tokens(&model, &tokenizer, &[ids], &opts)?
            .pop()
            .context("no response")?;
        if args.json {
            let v = serde_json::json!({
                "response": response.text,
                "response_tokens": response.tokens,
                "prompt_tokens": response.prompt_tokens,
                "finish_reason": response.finish,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{}", response.text);
        }
        Ok(())
    }
}

/// Where the monitor's scores of a responses file go: `R.jsonl` -> `R.monitor.jsonl`.
pub fn monitor_path(responses: &std::path::Path) -> PathBuf {
    let stem = responses
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "responses".into());
    responses.with_file_name(format!("{stem}.monitor.jsonl"))
}
