//! Generation over prompts: `prompts.jsonl` -> `responses.jsonl` (the `tell generate` stage).
//!
//! Each output line carries the prompt line's id and every field it had (as text), the response
//! text, the new token ids, the number of prompt tokens and why generation stopped. Lines are
//! written in prompt order and flushed as they complete, so an interrupted run keeps what it
//! finished.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;

use serde_json::{json, Map, Value};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{
    generate, generate_observed, Finish, GenerateOptions, Generated, Llama, Observe, Seen,
};
use tell_tokenizer::Tokenizer;

use crate::capture::CaptureReport;
use crate::encode::render_prompt;
use crate::error::{CaptureError, Result};
use crate::monitor::{Monitor, Scorer};
use crate::onepass::{Collector, OnePassStore};
use crate::patch::PatchSource;
use crate::prompts::{IdLines, PromptInput, PromptLine, PromptReader};

/// How to generate for a prompt file.
#[derive(Debug, Clone)]
pub struct RespondOptions {
    /// Sampling and length; empty `stop_tokens` means the tokenizer's end-of-text/turn tokens.
    pub generate: GenerateOptions,
    /// Strings that end a response; the response text is cut before the first one.
    pub stop_strings: Vec<String>,
    /// Prompts per batch.
    pub batch_size: usize,
    /// A system message prepended to `text` prompts rendered as chats (with `chat`).
    pub system: Option<String>,
    /// Render `text` prompts with the chat template (a `messages` prompt always is).
    pub chat: bool,
    /// Values `patch` edits copy in: a prompts file (line i patches prompt i) or a store
    /// captured with `--positions all` (record i patches prompt i).
    pub patch_from: Option<std::path::PathBuf>,
    /// The model's identity hash, to refuse a patch store captured from another model.
    pub patch_model_hash: Option<String>,
    /// Probes that score every generated token, and the file their scores go to.
    pub monitor: Option<(std::sync::Arc<Monitor>, std::path::PathBuf)>,
    /// Answer only part `index` of `count` of the prompts (`--shard index/count`).
    pub shard: Option<(usize, usize)>,
}

impl Default for RespondOptions {
    fn default() -> Self {
        Self {
            generate: GenerateOptions::default(),
            stop_strings: Vec::new(),
            batch_size: 8,
            system: None,
            chat: true,
            patch_from: None,
            patch_model_hash: None,
            monitor: None,
            shard: None,
        }
    }
}

/// One generated response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Decoded new text (special tokens skipped, cut at a stop string).
    pub text: String,
    /// New token ids, the stop token included.
    pub tokens: Vec<u32>,
    /// Tokens of the prompt the model read.
    pub prompt_tokens: usize,
    /// Why generation stopped.
    pub finish: Finish,
}

/// Totals of a generation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RespondReport {
    /// Prompts answered.
    pub prompts: usize,
    /// New tokens generated.
    pub new_tokens: usize,
}

/// The tokens a prompt renders to (the same rendering capture uses: [`render_prompt`]).
pub fn prompt_tokens(
    tokenizer: &Tokenizer,
    input: &PromptInput,
    chat: bool,
    system: Option<&str>,
) -> Result<Vec<u32>> {
    render_prompt(tokenizer, input, chat, system).map_err(|e| CaptureError::Options(e.to_string()))
}

/// The options with the tokenizer's stop tokens filled in when none are given.
fn with_stops(opts: &RespondOptions, tokenizer: &Tokenizer) -> GenerateOptions {
    let mut gen = opts.generate.clone();
    if gen.stop_tokens.is_empty() {
        gen.stop_tokens = tokenizer.stop_token_ids().to_vec();
    }
    gen
}

/// Whether the last few new tokens spell one of `stops` (a stop string can only appear in the
/// text of the last few tokens, so they are decoded alone).
fn hits_stop(tokenizer: &Tokenizer, stops: &[String], new: &[u32]) -> bool {
    !stops.is_empty()
        && tokenizer
            .decode(&new[new.len().saturating_sub(16)..], true)
            .map(|t| stops.iter().any(|s| t.contains(s.as_str())))
            .unwrap_or(false)
}

/// Decodes one continuation, cut before the first stop string.
fn response_of(
    tokenizer: &Tokenizer,
    stops: &[String],
    g: Generated,
    prompt_tokens: usize,
) -> Result<Response> {
    let mut text = tokenizer
        .decode(&g.tokens, true)
        .map_err(|e| CaptureError::Options(e.to_string()))?;
    if let Some(cut) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        text.truncate(cut);
    }
    Ok(Response {
        text,
        tokens: g.tokens,
        prompt_tokens,
        finish: g.finish,
    })
}

/// Generates for a batch of token sequences and decodes the results.
pub fn respond_tokens<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    opts: &RespondOptions,
) -> Result<Vec<Response>> {
    let gen = with_stops(opts, tokenizer);
    let stops = &opts.stop_strings;
    let generated = generate(model, prompts, &gen, |_, new: &[u32]| {
        hits_stop(tokenizer, stops, new)
    })
    .map_err(|e| CaptureError::Options(format!("generation failed: {e}")))?;
    generated
        .into_iter()
        .zip(prompts)
        .map(|(g, p)| response_of(tokenizer, stops, g, p.len()))
        .collect()
}

/// Answers every prompt line of `prompts` and writes `out` (JSONL) in prompt order, calling
/// `progress` with (prompts done, new tokens so far) as lines are written. At most
/// `batch_size` prompts run at once and a finished one's slot is refilled at once (continuous
/// batching); a response is written as soon as every earlier one is.
pub fn respond_file<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &Path,
    out: &Path,
    opts: &RespondOptions,
    progress: impl FnMut(usize, usize),
) -> Result<RespondReport> {
    respond(model, tokenizer, prompts, out, opts, None, progress).map(|(r, _)| r)
}

/// [`respond_file`] that also captures every prompt into a new store in the same pass (see
/// [`crate::onepass`]): the store holds what `tell capture` would write for the same prompts.
pub fn respond_and_capture<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &Path,
    out: &Path,
    opts: &RespondOptions,
    store: &OnePassStore,
    progress: impl FnMut(usize, usize),
) -> Result<(RespondReport, CaptureReport)> {
    let (r, c) = respond(model, tokenizer, prompts, out, opts, Some(store), progress)?;
    let c = c.ok_or_else(|| CaptureError::Options("the capture did not run".into()))?;
    Ok((r, c))
}

fn respond<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &Path,
    out: &Path,
    opts: &RespondOptions,
    store: Option<&OnePassStore>,
    mut progress: impl FnMut(usize, usize),
) -> Result<(RespondReport, Option<CaptureReport>)> {
    let context = model.config().max_position_embeddings;
    let mut lines: Vec<PromptLine> = Vec::new();
    let mut seqs: Vec<Vec<u32>> = Vec::new();
    // Every prompt is rendered and checked before the first token is generated, so a bad line
    // (or an id used twice, which would make two responses for one id) fails in seconds rather
    // than after hours of decoding.
    let mut seen = IdLines::default();
    for line in PromptReader::open(prompts)? {
        let line = line?;
        seen.check(prompts, &line)?;
        let ids = prompt_tokens(tokenizer, &line.input, opts.chat, opts.system.as_deref())?;
        if ids.len() + opts.generate.max_new_tokens > context {
            return Err(CaptureError::TooLong {
                path: prompts.to_owned(),
                line: line.line,
                tokens: ids.len() + opts.generate.max_new_tokens,
                context,
                with_response: true,
            });
        }
        lines.push(line);
        seqs.push(ids);
    }
    // A shard answers its part of the lines; every line was checked above all the same.
    let total = lines.len();
    let split = opts.shard.map(|(i, n)| tell_store::Split::new(i, n, total));
    let offset = split.map_or(0, |s| s.first);
    if let Some(s) = split {
        lines = lines.drain(s.range()).collect();
        seqs = seqs.drain(s.range()).collect();
    }
    let file = File::create(out).map_err(|e| CaptureError::Io {
        path: out.to_owned(),
        source: e,
    })?;
    let mut writer = BufWriter::new(file);
    let mut report = RespondReport::default();
    let mut gen = with_stops(opts, tokenizer);
    gen.first_index = offset;
    if let Some(iv) = gen.intervention.as_deref().filter(|iv| iv.patches()) {
        let Some(source) = &opts.patch_from else {
            return Err(CaptureError::Options(
                "a patch edit needs source values: give --patch-from FILE.jsonl (line i patches \
                 prompt i) or a store captured with --positions all (record i patches prompt i)"
                    .into(),
            ));
        };
        let sites = iv.patch_sites();
        let patch = if crate::patch::is_store(source) {
            PatchSource::store(
                source,
                &sites,
                total,
                model.config().hidden_size,
                opts.patch_model_hash.as_deref(),
            )?
        } else {
            let mut tokens = Vec::new();
            for line in PromptReader::open(source)? {
                let line = line?;
                tokens.push(prompt_tokens(
                    tokenizer,
                    &line.input,
                    opts.chat,
                    opts.system.as_deref(),
                )?);
            }
            PatchSource::prompts(source, tokens, total)?
        };
        let all: Vec<usize> = (offset..offset + seqs.len()).collect();
        let values = patch.values(model, &all, &sites, opts.batch_size)?;
        gen.patches = Some(std::sync::Arc::new(values));
    } else if let Some(source) = &opts.patch_from {
        return Err(CaptureError::Options(format!(
            "--patch-from {} is given but no edit patches",
            source.display()
        )));
    }
    let stops = &opts.stop_strings;
    let collector = match store {
        Some(store) => Some(RefCell::new(Collector::new(
            model,
            store,
            lines.iter().map(|l| l.meta.clone()).collect(),
            seqs.iter().map(Vec::len).collect(),
            split,
        )?)),
        None => None,
    };
    // Finished responses wait here until every earlier prompt's response is written.
    let mut pending: BTreeMap<usize, Response> = BTreeMap::new();
    let mut failed: Option<CaptureError> = None;
    let scorer = match &opts.monitor {
        Some((m, path)) if !m.is_empty() => Some(RefCell::new(Scorer::new(m, tokenizer, path)?)),
        _ => None,
    };
    let mut on_done = |i: usize, g: Generated| -> Result<()> {
        if let Some(c) = &collector {
            c.borrow_mut().finish(i, g.tokens.len())?;
        }
        if let Some(s) = &scorer {
            s.borrow_mut().finish(i, &lines[i].meta.id, &g.tokens)?;
        }
        pending.insert(i, response_of(tokenizer, stops, g, seqs[i].len())?);
        let mut wrote = false;
        while let Some(r) = pending.remove(&report.prompts) {
            write_line(&mut writer, &lines[report.prompts], &r).map_err(|e| CaptureError::Io {
                path: out.to_owned(),
                source: e,
            })?;
            report.prompts += 1;
            report.new_tokens += r.tokens.len();
            wrote = true;
        }
        if wrote {
            writer.flush().map_err(|e| CaptureError::Io {
                path: out.to_owned(),
                source: e,
            })?;
            progress(report.prompts, report.new_tokens);
        }
        Ok(())
    };
    let mut sink = |seen: Seen<'_>| {
        if let Some(c) = &collector {
            c.borrow_mut().see(seen)?;
        }
        if let Some(s) = &scorer {
            s.borrow_mut().see(seen)?;
        }
        Ok(())
    };
    let (mut prompt_sites, mut response_sites, mut last_only) = (Vec::new(), Vec::new(), true);
    if let Some(c) = &collector {
        let c = c.borrow();
        last_only = c.last_only();
        // Response positions need nothing of the prefill: its sites would be read for nothing.
        if c.reads_responses() {
            response_sites = c.model_sites.clone();
        } else {
            prompt_sites = c.model_sites.clone();
        }
    }
    if let Some((m, _)) = opts.monitor.as_ref().filter(|_| scorer.is_some()) {
        for site in m.sites() {
            if !response_sites.contains(&site) {
                response_sites.push(site);
            }
        }
    }
    let observe = (collector.is_some() || scorer.is_some()).then_some(Observe {
        prompt_sites,
        last_only,
        response_sites,
        sink: &mut sink,
    });
    generate_observed(
        model,
        &seqs,
        opts.batch_size.max(1),
        &gen,
        |_, new: &[u32]| hits_stop(tokenizer, stops, new),
        |i, g| match on_done(i, g) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        },
        observe,
    )
    .map_err(|e| CaptureError::Options(format!("generation failed: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    let captured = match collector {
        Some(c) => Some(c.into_inner().close(seqs.len())?),
        None => None,
    };
    Ok((report, captured))
}

/// Writes one response line: the prompt line's id and fields, then the response.
fn write_line(w: &mut BufWriter<File>, line: &PromptLine, r: &Response) -> std::io::Result<()> {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(line.meta.id));
    for (k, v) in [
        ("query_id", &line.meta.query_id),
        ("condition", &line.meta.condition),
        ("tier", &line.meta.tier),
    ] {
        if !v.is_empty() {
            obj.insert(k.into(), json!(v));
        }
    }
    for (k, v) in &line.meta.extra {
        obj.insert(k.clone(), json!(v));
    }
    obj.insert("response".into(), json!(r.text));
    obj.insert("response_tokens".into(), json!(r.tokens));
    obj.insert("prompt_tokens".into(), json!(r.prompt_tokens));
    obj.insert("finish_reason".into(), json!(r.finish));
    obj.insert("truncated".into(), json!(r.finish == Finish::Length));
    serde_json::to_writer(&mut *w, &Value::Object(obj))?;
    w.write_all(b"\n")
}
