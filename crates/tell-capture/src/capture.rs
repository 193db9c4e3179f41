//! The capture loop: prompts -> batches -> model -> pooled values -> store, in input order.
//!
//! Batching: prompts are read in windows of `window` records whose boundaries sit at fixed record
//! indices (multiples of `window`); inside a window, records are sorted by length (stable) and cut
//! into batches, so rows of similar length share a batch and padding stays small. Results are
//! written in input order once the window is done. Because the window boundaries do not depend on
//! where a run started, a resumed run recomputes the interrupted window with exactly the same
//! batches as an uninterrupted run, so its values are bit-identical (padding changes the order of
//! floating-point sums, so other batches could differ in the last bits).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::burn::tensor::{Tensor, TensorData};
use tell_llama::{Batch, Checkpoint, Edits, Intervention, Llama, Logits, RowEdit, Site};
use tell_store::{
    model_hash, pool_into, ModelIdentity, Positions, RecordMeta, SiteLayerKey, Store, StoreDtype,
    StoreSpec, StoreWriter,
};

use crate::encode::{Encoder, Truncate};
use crate::error::{CaptureError, Result};
use crate::patch::{is_store, PatchSource};
use crate::prompts::{check_file, PromptReader};
use crate::sites::select;

/// Everything `tell capture` lets the user choose.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// `--sites` names (empty: `resid_post`).
    pub sites: Vec<String>,
    /// `--layers` spec (`None`: all layers, or those named in full site names).
    pub layers: Option<String>,
    /// Stored positions.
    pub positions: Positions,
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// Stored element type.
    pub dtype: StoreDtype,
    /// Continue the store in the output directory.
    pub resume: bool,
    /// Replace a store of another model or layout.
    pub force: bool,
    /// Records per shard (`None`: the store's default).
    pub shard_records: Option<usize>,
    /// Context-length policy (`None`: over-long prompts are errors).
    pub truncate: Option<Truncate>,
    /// Records per sorting window (`None`: 8 batches, 2 for `all` positions).
    pub window: Option<usize>,
    /// Render `text` prompts with the chat template (as `tell generate` does by default).
    pub chat: bool,
    /// System message for `text` prompts rendered as chats.
    pub system: Option<String>,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Provenance kept in the manifest (e.g. the command line).
    pub args: serde_json::Value,
    /// Edits applied while capturing: the store holds the edited model's values.
    pub intervention: Option<Arc<Intervention>>,
    /// Values `patch` edits copy in: a prompts file (line i patches prompt i) or a store
    /// captured with `--positions all` (record i patches prompt i).
    pub patch_from: Option<PathBuf>,
    /// Capture only part `index` of `count` of the prompts (`--shard index/count`): contiguous
    /// runs of lines, the same for every command ([`tell_store::Split`]).
    pub shard: Option<(usize, usize)>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            sites: Vec::new(),
            layers: None,
            positions: Positions::Last,
            batch_size: 8,
            dtype: StoreDtype::F32,
            resume: false,
            force: false,
            shard_records: None,
            truncate: None,
            window: None,
            chat: true,
            system: None,
            progress: false,
            args: serde_json::Value::Null,
            intervention: None,
            patch_from: None,
            shard: None,
        }
    }
}

/// How a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every prompt is in the store and the store is marked complete.
    Complete,
    /// Stopped on request after committing whole shards; `--resume` completes it.
    Interrupted,
}

/// What a capture did.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureReport {
    /// The store directory.
    pub dir: PathBuf,
    /// How it ended.
    pub outcome: Outcome,
    /// Prompt lines in the file.
    pub prompts: usize,
    /// Records committed before this run (resume).
    pub resumed_from: usize,
    /// Records the store holds now.
    pub records: usize,
    /// Tokens of the records written by this run.
    pub tokens: u64,
    /// Rows the LM head was applied to (`logits` captures: the kept positions only).
    pub head_rows: u64,
    /// Seconds spent in the capture loop (model loading excluded).
    pub seconds: f64,
}

impl CaptureReport {
    /// Tokens per second of this run's capture loop.
    pub fn tokens_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.tokens as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The model identity stored in the manifest: sha256 of the config and the tensor list with
/// dtypes and shapes (cheap: no weight bytes are read, yet any other model differs).
pub fn model_identity(ck: &Checkpoint) -> ModelIdentity {
    let config = format!("{:?}", ck.config);
    let tensors: String = ck
        .source()
        .describe()
        .iter()
        .map(|(name, m)| format!("{name} {} {:?}\n", m.dtype, m.shape))
        .collect();
    ModelIdentity {
        name: ck.path.display().to_string(),
        hash: model_hash(&[config.as_bytes(), tensors.as_bytes()]),
    }
}

/// Installs a Ctrl-C handler and returns the flag it sets; a second Ctrl-C exits at once (the
/// store stays resumable either way). Call once per process.
pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!(
                "\ninterrupted twice: exiting now; rerun with --resume to complete the store"
            );
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after the current shard (Ctrl-C again to exit now)");
    })
    .map_err(|e| CaptureError::Options(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}

/// Captures `prompts` through the model at `model` into the store `out`, on the CPU backend.
pub fn capture(
    model: &Path,
    prompts: &Path,
    out: &Path,
    opts: &CaptureOptions,
    stop: &AtomicBool,
) -> Result<CaptureReport> {
    capture_on::<tell_llama::CpuBackend>(model, prompts, out, opts, stop, &Default::default())
}

/// Like [`capture`], on any burn backend and device.
pub fn capture_on<B: Backend>(
    model: &Path,
    prompts: &Path,
    out: &Path,
    opts: &CaptureOptions,
    stop: &AtomicBool,
    device: &B::Device,
) -> Result<CaptureReport> {
    if opts.batch_size == 0 {
        return Err(CaptureError::Options(
            "--batch-size must be at least 1".into(),
        ));
    }
    if opts.shard_records == Some(0) {
        return Err(CaptureError::Options(
            "--shard-records must be at least 1".into(),
        ));
    }
    let ck = Checkpoint::open(model)?;
    let cfg = ck.config.clone();
    let selection = select(&opts.sites, opts.layers.as_deref(), cfg.num_layers)?;
    // Every line is parsed and encoded once up front, so bad input fails before any model work
    // and before the store is touched; only the ids are kept.
    let summary = check_file(prompts)?;
    let mut encoder = Encoder::new(
        prompts,
        cfg.max_position_embeddings,
        cfg.vocab_size,
        opts.truncate,
    );
    if let Some(line) = summary.first_text_line {
        let tokenizer = match ck.gguf() {
            Some(g) => tell_tokenizer::Tokenizer::from_gguf(g.tokenizer()),
            None => tell_tokenizer::Tokenizer::load(model),
        }
        .map_err(|e| CaptureError::Prompt {
            path: prompts.to_path_buf(),
            line,
            message: format!("text needs the model's tokenizer, which cannot be loaded: {e}"),
        })?;
        encoder = encoder.with_tokenizer(tokenizer, opts.chat, opts.system.clone());
    }
    let all_ids = summary.ids;
    for line in PromptReader::open(prompts)? {
        encoder.encode(&line?)?;
    }
    let identity = model_identity(&ck);
    if let Some(iv) = &opts.intervention {
        iv.check(&cfg)?;
    }
    let patch = patch_source(
        opts,
        &encoder,
        all_ids.len(),
        cfg.hidden_size,
        &identity.hash,
    )?;
    // The part of the prompts this process captures; `offset` turns its record indices into
    // global prompt indices (noise keys, patch sources, the records' prompt_index).
    let split = opts
        .shard
        .map(|(i, n)| tell_store::Split::new(i, n, all_ids.len()));
    let (offset, ids) = match split {
        Some(s) => (s.first, all_ids[s.range()].to_vec()),
        None => (0, all_ids),
    };

    let mut spec = StoreSpec::new(
        identity,
        selection.site_specs(cfg.hidden_size, cfg.vocab_size),
        selection.layers.iter().map(|&l| l as u32).collect(),
        opts.positions,
        opts.dtype,
    );
    if let Some(n) = opts.shard_records {
        spec.shard_records = n;
    }
    spec.tool_version = concat!("tell-capture ", env!("CARGO_PKG_VERSION")).to_string();
    spec.args = opts.args.clone();
    spec.split = split;
    let mut writer = if opts.resume {
        StoreWriter::resume(out, spec, opts.force)?
    } else {
        StoreWriter::create(out, spec, opts.force)?
    };
    let done = writer.completed_records();
    check_resumed_ids(out, &ids, done, prompts)?;
    let total = ids.len();
    drop(ids);

    let llama = Llama::<B>::from_weights(cfg, ck.source(), device)?;
    drop(ck);
    let sites = selection.sites();
    // Logits are not asked of the model: the LM head runs here on the kept rows of `ln_final`
    // only (a `last` capture of a long prompt needs one row of `[seq, vocab]`). For the means,
    // the head of the mean equals the mean of the heads (the head is linear, without bias).
    let mut model_sites: Vec<Site> = sites
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != Site::Logits)
        .collect();
    if selection.logits && !model_sites.contains(&Site::LnFinal) {
        model_sites.push(Site::LnFinal);
    }
    let keys: Vec<&SiteLayerKey> = sites.iter().map(|(_, k)| k).collect();
    let window = opts.window.unwrap_or(
        opts.batch_size
            * if opts.positions == Positions::All {
                2
            } else {
                8
            },
    );
    let window = window.max(1);

    let bar = progress_bar(opts.progress, total, done);
    let start = Instant::now();
    let mut tokens_done = 0u64;
    let mut head_rows_done = 0u64;
    let first_window = done / window * window;
    let mut reader = PromptReader::open(prompts)?;
    reader.skip_lines(offset + first_window)?;
    let mut next = first_window;
    let mut interrupted = false;
    loop {
        let mut lines = Vec::with_capacity(window);
        for line in reader.by_ref().take(window.min(total - next)) {
            lines.push(line?);
        }
        if lines.is_empty() {
            break;
        }
        let base = next;
        next += lines.len();
        let mut encoded = Vec::with_capacity(lines.len());
        let mut metas = Vec::with_capacity(lines.len());
        for line in lines {
            let e = encoder.encode(&line)?;
            let mut meta = line.meta;
            meta.n_tokens = e.tokens.len();
            meta.n_response_tokens = e.n_response;
            encoded.push(e.tokens);
            metas.push(meta);
        }
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| encoded[i].len());
        // values[i][k]: record i's stored values for key k.
        let mut values: Vec<Vec<Vec<f32>>> = vec![Vec::new(); encoded.len()];
        for chunk in order.chunks(opts.batch_size) {
            if chunk.iter().all(|&i| base + i < done) {
                continue; // committed already; skipping does not change any other batch
            }
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
            let batch = Batch::left_padded(&seqs, 0)?;
            let rows = row_edits(&llama, opts, patch.as_ref(), chunk, offset + base, &metas)?;
            let edits = opts.intervention.as_deref().map(|iv| Edits {
                intervention: iv,
                rows: &rows,
            });
            let mut output = llama.forward_with(&batch, &model_sites, Logits::None, edits)?;
            // pooled[site][b]: the kept values of the chunk's row b at that site.
            let mut pooled = BTreeMap::new();
            for site in &model_sites {
                let tensor = output.captures.take(site).ok_or_else(|| {
                    CaptureError::Tensor(format!("the model did not capture {site}"))
                })?;
                let rows = pool_batch(tensor, &batch, chunk, &metas, opts.positions).map_err(
                    |(b, message)| CaptureError::Prompt {
                        path: prompts.to_path_buf(),
                        line: base + chunk[b] + 1,
                        message,
                    },
                )?;
                pooled.insert(*site, rows);
            }
            if selection.logits {
                let normed = pooled.get(&Site::LnFinal).ok_or_else(|| {
                    CaptureError::Tensor("the model did not capture ln_final".into())
                })?;
                let (logits, rows) = head_rows(&llama, normed)?;
                head_rows_done += rows as u64;
                pooled.insert(Site::Logits, logits);
            }
            for (site, _) in &sites {
                let rows = pooled.remove(site).ok_or_else(|| {
                    CaptureError::Tensor(format!("the model did not capture {site}"))
                })?;
                for (&i, row) in chunk.iter().zip(rows) {
                    values[i].push(row);
                }
            }
        }
        for (i, (mut meta, vals)) in metas.into_iter().zip(values).enumerate() {
            if base + i < done {
                continue;
            }
            if split.is_some() {
                meta.extra.push((
                    tell_store::PROMPT_INDEX.to_string(),
                    (offset + base + i).to_string(),
                ));
            }
            let n = meta.n_tokens as u64;
            let pairs: Vec<(SiteLayerKey, &[f32])> = keys
                .iter()
                .zip(&vals)
                .map(|(k, v)| ((*k).clone(), v.as_slice()))
                .collect();
            writer.push_record(meta, &pairs)?;
            tokens_done += n;
            bar.inc(1);
        }
        let secs = start.elapsed().as_secs_f64();
        if secs > 0.0 {
            bar.set_message(format!("{:.0} tokens/s", tokens_done as f64 / secs));
        }
        if stop.load(Ordering::SeqCst) && next < total {
            writer.flush()?;
            interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    if !interrupted && next < total {
        // The first pass read `total` lines; a pipe or a file cut meanwhile gives fewer now.
        writer.flush()?;
        return Err(CaptureError::Prompt {
            path: prompts.to_path_buf(),
            line: next + 1,
            message: format!(
                "the file ended after {next} of the {total} lines read before (changed while \
                 capturing, or a pipe, which cannot be read twice: write it to a file); the \
                 store keeps its whole shards and --resume continues it"
            ),
        });
    }
    let seconds = start.elapsed().as_secs_f64();
    let records = if interrupted {
        writer.completed_records()
    } else {
        writer.finish()?.record_count
    };
    Ok(CaptureReport {
        dir: out.to_path_buf(),
        outcome: if interrupted {
            Outcome::Interrupted
        } else {
            Outcome::Complete
        },
        prompts: total,
        resumed_from: done,
        records,
        tokens: tokens_done,
        head_rows: head_rows_done,
        seconds,
    })
}

/// The patch source of a capture whose edits patch, checked before the store is touched.
fn patch_source(
    opts: &CaptureOptions,
    encoder: &Encoder,
    targets: usize,
    hidden: usize,
    model_hash: &str,
) -> Result<Option<PatchSource>> {
    let sites = match &opts.intervention {
        Some(iv) if iv.patches() => iv.patch_sites(),
        _ => {
            if let Some(p) = &opts.patch_from {
                return Err(CaptureError::Options(format!(
                    "--patch-from {} is given but no edit patches",
                    p.display()
                )));
            }
            return Ok(None);
        }
    };
    let Some(path) = &opts.patch_from else {
        return Err(CaptureError::Options(
            "a patch edit needs source values: give --patch-from FILE.jsonl (line i patches \
             prompt i) or a store captured with --positions all (record i patches prompt i)"
                .into(),
        ));
    };
    if is_store(path) {
        return PatchSource::store(path, &sites, targets, hidden, Some(model_hash)).map(Some);
    }
    check_file(path)?;
    let mut tokens = Vec::new();
    for line in PromptReader::open(path)? {
        tokens.push(encoder.encode(&line?)?.tokens);
    }
    PatchSource::prompts(path, tokens, targets).map(Some)
}

/// Each batch row's edit context: its prompt length, its noise key (the global prompt index,
/// as in generation, so a record's noise does not depend on its batch) and its patch values.
fn row_edits<B: Backend>(
    llama: &Llama<B>,
    opts: &CaptureOptions,
    patch: Option<&PatchSource>,
    chunk: &[usize],
    base: usize,
    metas: &[RecordMeta],
) -> Result<Vec<RowEdit>> {
    let Some(iv) = &opts.intervention else {
        return Ok(Vec::new());
    };
    let values = match patch {
        Some(p) => {
            let global: Vec<usize> = chunk.iter().map(|&i| base + i).collect();
            p.values(llama, &global, &iv.patch_sites(), opts.batch_size)?
                .into_iter()
                .map(Some)
                .collect()
        }
        None => vec![None; chunk.len()],
    };
    Ok(chunk
        .iter()
        .zip(values)
        .map(|(&i, patch)| RowEdit {
            prompt_len: metas[i].prompt_tokens(),
            key: (base + i) as u64,
            patch,
        })
        .collect())
}

/// Rows of the LM head computed at once: bounds the `[rows, vocab]` tensor of an `all` capture.
const HEAD_ROWS: usize = 256;

/// Pools a captured `[rows, seq, width]` tensor per row of the batch; an error names the row.
fn pool_batch<B: Backend>(
    tensor: Tensor<B, 3>,
    batch: &Batch,
    chunk: &[usize],
    metas: &[RecordMeta],
    positions: Positions,
) -> std::result::Result<Vec<Vec<f32>>, (usize, String)> {
    let width = tensor.dims()[2];
    // `last`: each row's position is selected where the model ran (a GPU), so that one row per
    // record crosses to the host.
    if positions == Positions::Last {
        let prompts = chunk.iter().map(|&i| metas[i].prompt_tokens());
        if let Some(rows) = crate::select::last_positions(&tensor, batch, prompts) {
            let data = rows
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| (0, format!("reading captured values back: {e:?}")))?;
            return Ok(data.chunks_exact(width).map(<[f32]>::to_vec).collect());
        }
    }
    // A tensor converted to f32 always reads back as f32; the error cannot name a prompt.
    let data = tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| (0, format!("reading captured values back: {e:?}")))?;
    let mut out = Vec::with_capacity(chunk.len());
    for (b, &i) in chunk.iter().enumerate() {
        let row0 = b * batch.seq + batch.start(b);
        let block = &data[row0 * width..(b + 1) * batch.seq * width];
        let meta = &metas[i];
        let mut pooled = Vec::new();
        pool_into(
            positions,
            block,
            width,
            meta.prompt_tokens(),
            meta.n_response_tokens,
            &mut pooled,
        )
        .map_err(|e| (b, e.to_string()))?;
        out.push(pooled);
    }
    Ok(out)
}

/// The logits of pooled `ln_final` rows, per batch row, and how many head rows were computed.
pub(crate) fn head_rows<B: Backend>(
    llama: &Llama<B>,
    normed: &[Vec<f32>],
) -> Result<(Vec<Vec<f32>>, usize)> {
    let hidden = llama.config().hidden_size;
    let vocab = llama.config().vocab_size;
    let flat: Vec<f32> = normed.iter().flatten().copied().collect();
    let total = flat.len() / hidden;
    let mut logits = Vec::with_capacity(total * vocab);
    for start in (0..total).step_by(HEAD_ROWS) {
        let n = HEAD_ROWS.min(total - start);
        let rows = flat[start * hidden..(start + n) * hidden].to_vec();
        let x = Tensor::<B, 2>::from_data(TensorData::new(rows, [n, hidden]), llama.device());
        let y = llama
            .head(x)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| CaptureError::Tensor(format!("logits: {e:?}")))?;
        logits.extend_from_slice(&y);
    }
    let mut out = Vec::with_capacity(normed.len());
    let mut at = 0;
    for row in normed {
        let n = row.len() / hidden * vocab;
        out.push(logits[at..at + n].to_vec());
        at += n;
    }
    Ok((out, total))
}

/// On resume, the committed records must be the first lines of this prompts file.
fn check_resumed_ids(out: &Path, ids: &[String], done: usize, prompts: &Path) -> Result<()> {
    if done == 0 {
        return Ok(());
    }
    let rows = Store::open(out)?.records()?;
    for row in rows.iter().take(done) {
        let found = ids.get(row.index).map(String::as_str).unwrap_or("");
        if found != row.meta.id {
            return Err(CaptureError::ResumeMismatch {
                path: out.to_path_buf(),
                record: row.index,
                line: row.index + 1,
                stored: row.meta.id.clone(),
                found: if row.index < ids.len() {
                    found.to_string()
                } else {
                    format!("<none: {} has {} lines>", prompts.display(), ids.len())
                },
            });
        }
    }
    Ok(())
}

fn progress_bar(enabled: bool, total: usize, done: usize) -> ProgressBar {
    let target = if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total as u64), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} records  {msg}  eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done as u64);
    bar
}
