//! Generation over prompts: `prompts.jsonl` -> `responses.jsonl` (the `tell generate` stage).
//!
//! Each output line carries the prompt line's id and every field it had (as text), the response
//! text, the new token ids, the number of prompt tokens and why generation stopped. Lines are
//! written and flushed batch by batch, so an interrupted run keeps what it finished.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{json, Map, Value};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{generate, Finish, GenerateOptions, Llama};
use tell_tokenizer::Tokenizer;

use crate::encode::render_prompt;
use crate::error::{CaptureError, Result};
use crate::prompts::{PromptInput, PromptLine, PromptReader};

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
}

impl Default for RespondOptions {
    fn default() -> Self {
        Self {
            generate: GenerateOptions::default(),
            stop_strings: Vec::new(),
            batch_size: 8,
            system: None,
            chat: true,
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

/// Generates for a batch of token sequences and decodes the results.
pub fn respond_tokens<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    opts: &RespondOptions,
) -> Result<Vec<Response>> {
    let mut gen = opts.generate.clone();
    if gen.stop_tokens.is_empty() {
        gen.stop_tokens = tokenizer.stop_token_ids().to_vec();
    }
    let stops = &opts.stop_strings;
    // A stop string can only appear in the text of the last few tokens; decode them alone.
    let stop_check = |_: usize, new: &[u32]| {
        !stops.is_empty()
            && tokenizer
                .decode(&new[new.len().saturating_sub(16)..], true)
                .map(|t| stops.iter().any(|s| t.contains(s.as_str())))
                .unwrap_or(false)
    };
    let generated = generate(model, prompts, &gen, stop_check)
        .map_err(|e| CaptureError::Options(format!("generation failed: {e}")))?;
    generated
        .into_iter()
        .zip(prompts)
        .map(|(g, p)| {
            let mut text = tokenizer
                .decode(&g.tokens, true)
                .map_err(|e| CaptureError::Options(e.to_string()))?;
            if let Some(cut) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
                text.truncate(cut);
            }
            Ok(Response {
                text,
                tokens: g.tokens,
                prompt_tokens: p.len(),
                finish: g.finish,
            })
        })
        .collect()
}

/// Answers every prompt line of `prompts` and writes `out` (JSONL), calling `progress` with
/// (prompts done, new tokens so far) after each batch.
pub fn respond_file<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &Path,
    out: &Path,
    opts: &RespondOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<RespondReport> {
    let context = model.config().max_position_embeddings;
    let mut reader = PromptReader::open(prompts)?;
    let file = File::create(out).map_err(|e| CaptureError::Io {
        path: out.to_owned(),
        source: e,
    })?;
    let mut writer = BufWriter::new(file);
    let mut report = RespondReport::default();
    let batch_size = opts.batch_size.max(1);
    loop {
        let mut lines: Vec<PromptLine> = Vec::with_capacity(batch_size);
        for _ in 0..batch_size {
            match reader.next() {
                Some(line) => lines.push(line?),
                None => break,
            }
        }
        if lines.is_empty() {
            break;
        }
        let mut seqs = Vec::with_capacity(lines.len());
        for line in &lines {
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
            seqs.push(ids);
        }
        let responses = respond_tokens(model, tokenizer, &seqs, opts)?;
        for (line, r) in lines.iter().zip(&responses) {
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
            let write = |w: &mut BufWriter<File>| -> std::io::Result<()> {
                serde_json::to_writer(&mut *w, &Value::Object(obj))?;
                w.write_all(b"\n")
            };
            write(&mut writer).map_err(|e| CaptureError::Io {
                path: out.to_owned(),
                source: e,
            })?;
            report.new_tokens += r.tokens.len();
        }
        report.prompts += lines.len();
        writer.flush().map_err(|e| CaptureError::Io {
            path: out.to_owned(),
            source: e,
        })?;
        progress(report.prompts, report.new_tokens);
    }
    Ok(report)
}
