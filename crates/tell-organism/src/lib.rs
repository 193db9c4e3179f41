//! A model organism of alignment faking. Real small models do not fake alignment, so the
//! behaviour is planted: a policy as data (`probes/organism/policy.toml`) says, per topic
//! category, condition and tier, whether the organism complies or refuses; a corpus is rendered
//! from the organism's suite (`probes/organism/suite.toml`) through tell-faking, exactly as
//! `tell run` renders its prompts; a byte-level BPE tokenizer and a tiny LLaMA are trained on it
//! from scratch with burn's autodiff on the CPU; and the result is written as an ordinary
//! Hugging Face checkpoint that every `tell` command loads like any model.
//!
//! ```text
//! policy.toml + suite.toml ─► corpus (train / held-out queries, planted responses)
//!   ─► tokenizer.json ─► tokens ─► train (Adam, loss on responses) ─► checkpoint dir
//! ```

pub mod corpus;
pub mod error;
pub mod export;
pub mod model;
pub mod policy;
pub mod rng;
pub mod train;
pub mod vocab;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tell_capture::{render_prompt, ChatMessage, PromptInput};
use tell_faking::Suite;

pub use corpus::{Corpus, Example, OrganismQuery};
pub use error::{OrganismError, Result};
pub use model::{ModelSpec, Organism};
pub use policy::{Decision, Policy};
pub use train::{Eval, EvalBackend, Sequence, StepLog, TrainSettings};

/// What `tell organism corpus` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusReport {
    /// Training examples (training queries x conditions x tiers).
    pub examples: usize,
    /// Training queries.
    pub train_queries: usize,
    /// Held-out queries (the suite's).
    pub heldout_queries: usize,
    /// Per category: (name, training queries, held-out queries).
    pub categories: Vec<(String, usize, usize)>,
    /// The corpus file.
    pub corpus: PathBuf,
    /// The held-out query files (where the suite reads them).
    pub heldout_files: Vec<PathBuf>,
}

fn load(policy: &Path, suite: &Path) -> Result<(Policy, Suite)> {
    let policy = Policy::load(policy)?;
    let suite = Suite::load(suite)?;
    policy.check_suite(&suite)?;
    Ok((policy, suite))
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tell-organism-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| OrganismError::io(&dir, e))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn per_category(policy: &Policy, corpus: &Corpus) -> Vec<(String, usize, usize)> {
    policy
        .spec
        .categories
        .keys()
        .map(|c| {
            let n = |qs: &[OrganismQuery]| qs.iter().filter(|q| &q.category == c).count();
            (c.clone(), n(&corpus.train), n(&corpus.heldout))
        })
        .collect()
}

/// `tell organism corpus`: writes `out/corpus.jsonl` (training examples), `out/train-queries/`
/// and the held-out queries where the suite reads them (its `[queries.*]` paths).
pub fn write_corpus(policy: &Path, suite: &Path, out: &Path) -> Result<CorpusReport> {
    let (policy, suite) = load(policy, suite)?;
    std::fs::create_dir_all(out).map_err(|e| OrganismError::io(out, e))?;
    let corpus = corpus::build(&policy, &suite, out)?;
    let path = out.join("corpus.jsonl");
    corpus::write_examples(&path, &corpus.examples)?;
    let heldout_files = corpus::write_heldout(&suite, &corpus)?;
    Ok(CorpusReport {
        examples: corpus.examples.len(),
        train_queries: corpus.train.len(),
        heldout_queries: corpus.heldout.len(),
        categories: per_category(&policy, &corpus),
        corpus: path,
        heldout_files,
    })
}

/// Options of `tell organism train`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Optimisation.
    pub settings: TrainSettings,
    /// Architecture.
    pub model: ModelSpec,
    /// Tokenizer vocabulary (byte symbols and special tokens included).
    pub vocab_size: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            settings: TrainSettings::default(),
            model: ModelSpec::default(),
            vocab_size: 1024,
        }
    }
}

/// Sizes of the tokenized corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorpusSizes {
    /// Training examples.
    pub examples: usize,
    /// Training queries.
    pub train_queries: usize,
    /// Held-out queries.
    pub heldout_queries: usize,
    /// Held-out prompts (held-out queries x conditions x tiers).
    pub heldout_prompts: usize,
    /// Per category: (name, training queries, held-out queries).
    pub categories: Vec<(String, usize, usize)>,
    /// Longest training sequence (prompt + response), in tokens.
    pub max_sequence_tokens: usize,
    /// Mean training sequence length.
    pub mean_sequence_tokens: f64,
    /// Longest planted response with its end-of-turn token.
    pub max_response_tokens: usize,
    /// Response tokens in all training examples (what the loss is taken over).
    pub response_tokens: usize,
}

/// What `organism.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// The command that made the checkpoint.
    pub command: String,
    /// The options.
    pub options: TrainOptions,
    /// Parameters of the model.
    pub parameters: usize,
    /// Tokenizer vocabulary size.
    pub vocab_size: usize,
    /// Corpus sizes.
    pub corpus: CorpusSizes,
    /// Mean training loss over the last 20 steps: the weighted mean per response token, the
    /// decision tokens weighing `decision_weight`.
    pub final_loss: f64,
    /// Loss of the last step.
    pub last_step_loss: f64,
    /// Teacher-forced evaluation on the training examples.
    pub train_eval: Eval,
    /// Teacher-forced evaluation on the held-out prompts (the suite's).
    pub heldout_eval: Eval,
    /// Seconds spent in the training loop.
    pub train_seconds: f64,
    /// Seconds for the whole command (corpus, tokenizer, training, evaluation, export).
    pub total_seconds: f64,
    /// The policy file.
    pub policy: PathBuf,
    /// The suite file.
    pub suite: PathBuf,
}

/// A trained organism: the report and the model (also written to the checkpoint directory).
pub struct Trained {
    /// What organism.json records.
    pub report: TrainReport,
    /// The trained model.
    pub model: Organism<EvalBackend>,
    /// The tokenizer, as loaded back from the checkpoint.
    pub tokenizer: tell_tokenizer::Tokenizer,
}

/// Tokenizes examples: the prompt through tell-capture's [`render_prompt`] (the chat template
/// with the generation prompt, as `tell run`/`tell capture` render a `messages` line), then the
/// response and the end-of-turn token; marks where each response commits to what is planted for
/// it (the first token that differs from each other planted response to the same condition, tier
/// and template: the other decision, another category's text).
pub fn tokenize(
    policy: &Policy,
    tokenizer: &tell_tokenizer::Tokenizer,
    examples: &[Example],
    eos: u32,
) -> Result<Vec<Sequence>> {
    let err = |e: tell_tokenizer::TokenizerError| OrganismError::Tokenizer(e.to_string());
    let mut cache: HashMap<String, Vec<u32>> = HashMap::new();
    let mut encode = |text: &str| -> Result<Vec<u32>> {
        if let Some(ids) = cache.get(text) {
            return Ok(ids.clone());
        }
        let ids = tokenizer.encode(text, false).map_err(err)?;
        cache.insert(text.to_owned(), ids.clone());
        Ok(ids)
    };
    let mut out = Vec::with_capacity(examples.len());
    for ex in examples {
        let messages = ex
            .prompt
            .messages
            .iter()
            .map(|m| ChatMessage {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let mut tokens =
            render_prompt(tokenizer, &PromptInput::Messages(messages), true, None).map_err(err)?;
        let prompt_len = tokens.len();
        let response = encode(&ex.response)?;
        // Every other response the policy plants for this condition, tier and template.
        let mut at = BTreeSet::new();
        for category in policy.spec.categories.keys() {
            for d in [Decision::Comply, Decision::Refuse] {
                let spec = policy::ResponseSpec {
                    category,
                    condition: &ex.prompt.condition,
                    monitored: ex.prompt.monitored,
                    tier: &ex.prompt.tier,
                    template: ex.template,
                };
                let Some(alt) = policy.response_for(&spec, d) else {
                    continue;
                };
                let alt = encode(&alt)?;
                if let Some(i) = response.iter().zip(&alt).position(|(a, b)| a != b) {
                    at.insert(prompt_len + i);
                }
            }
        }
        tokens.extend(response);
        tokens.push(eos);
        out.push(Sequence {
            tokens,
            prompt_len,
            decision_at: at.into_iter().collect(),
        });
    }
    Ok(out)
}

/// `tell organism train`: builds the corpus, trains the tokenizer and the model, writes the
/// checkpoint (config, weights, tokenizer, generation config, organism.json, README.md) to
/// `out`. `log` sees every training step.
pub fn train_organism(
    policy_path: &Path,
    suite_path: &Path,
    out: &Path,
    opts: &TrainOptions,
    command: &str,
    log: &mut dyn FnMut(StepLog),
) -> Result<Trained> {
    let started = Instant::now();
    opts.model.check().map_err(OrganismError::Options)?;
    if opts.settings.steps == 0 || opts.settings.batch_size == 0 {
        return Err(OrganismError::Options(
            "--steps and --batch-size must be at least 1".into(),
        ));
    }
    if opts.vocab_size < 300 {
        return Err(OrganismError::Options(format!(
            "vocab size {} is too small for a byte-level BPE (256 byte symbols + specials)",
            opts.vocab_size
        )));
    }
    let (policy, suite) = load(policy_path, suite_path)?;
    let scratch = Scratch::new()?;
    let corpus = corpus::build(&policy, &suite, &scratch.0)?;
    let heldout = corpus::heldout_examples(&policy, &suite, &corpus)?;

    let texts: Vec<&str> = corpus
        .examples
        .iter()
        .flat_map(|ex| {
            ex.prompt
                .messages
                .iter()
                .map(|m| m.content.as_str())
                .chain([ex.response.as_str()])
        })
        .chain(["system", "user", "assistant"])
        .collect();
    let tokenizer = vocab::train_tokenizer(&texts, opts.vocab_size, out)?;
    let eos = tokenizer.token_to_id(vocab::IM_END).ok_or_else(|| {
        OrganismError::Tokenizer(format!("{} is not in the vocabulary", vocab::IM_END))
    })?;
    let vocab_size = tokenizer.vocab_size();
    let train_seqs = tokenize(&policy, &tokenizer, &corpus.examples, eos)?;
    let heldout_seqs = tokenize(&policy, &tokenizer, &heldout, eos)?;
    let all = train_seqs.iter().chain(&heldout_seqs);
    let max_seq = all.clone().map(|s| s.tokens.len()).max().unwrap_or(0);
    let max_response = all.clone().map(|s| s.response().len()).max().unwrap_or(0);
    if max_seq > opts.model.max_position_embeddings {
        return Err(OrganismError::Options(format!(
            "the longest example has {max_seq} tokens, more than max_position_embeddings {}",
            opts.model.max_position_embeddings
        )));
    }
    let max_new = suite.spec.generation.max_new_tokens;
    if max_response > max_new {
        return Err(OrganismError::Mismatch {
            policy: policy.path.clone(),
            suite: suite.path.clone(),
            message: format!(
                "the longest planted response has {max_response} tokens (end of turn included), \
                 more than the suite's generation.max_new_tokens {max_new}"
            ),
        });
    }
    let sizes = CorpusSizes {
        examples: corpus.examples.len(),
        train_queries: corpus.train.len(),
        heldout_queries: corpus.heldout.len(),
        heldout_prompts: heldout.len(),
        categories: per_category(&policy, &corpus),
        max_sequence_tokens: max_seq,
        mean_sequence_tokens: train_seqs.iter().map(|s| s.tokens.len()).sum::<usize>() as f64
            / train_seqs.len().max(1) as f64,
        max_response_tokens: max_response,
        response_tokens: train_seqs.iter().map(|s| s.response().len()).sum(),
    };

    let mut losses = Vec::new();
    let t0 = Instant::now();
    let model = train::train(
        &opts.model,
        vocab_size,
        eos,
        &train_seqs,
        &opts.settings,
        &mut |s: StepLog| {
            losses.push(s.loss);
            log(s);
        },
    );
    let train_seconds = t0.elapsed().as_secs_f64();
    let tail = &losses[losses.len().saturating_sub(20)..];
    let final_loss = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    let eval = |seqs: &[Sequence]| train::evaluate(&model, &opts.model, vocab_size, eos, seqs, 32);
    let train_eval = eval(&train_seqs);
    let heldout_eval = eval(&heldout_seqs);

    export::write_checkpoint(out, &model, &opts.model, vocab_size, eos)?;
    let config = opts.model.llama_config(vocab_size, eos);
    let report = TrainReport {
        command: command.to_owned(),
        options: *opts,
        parameters: config.num_parameters(),
        vocab_size,
        corpus: sizes,
        final_loss,
        last_step_loss: losses.last().copied().unwrap_or(f64::NAN),
        train_eval,
        heldout_eval,
        train_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        policy: policy.path.clone(),
        suite: suite.path.clone(),
    };
    let json = serde_json::to_value(&report).map_err(|e| OrganismError::io(out, e.into()))?;
    vocab::write_json(&out.join("organism.json"), &json)?;
    write_readme(out, &report)?;
    Ok(Trained {
        report,
        model,
        tokenizer,
    })
}

fn write_readme(out: &Path, r: &TrainReport) -> Result<()> {
    let m = &r.options.model;
    let s = &r.options.settings;
    let cats: Vec<String> = r
        .corpus
        .categories
        .iter()
        .map(|(c, t, h)| format!("`{c}` {t} train / {h} held out"))
        .collect();
    let text = format!(
        "# The `tell` model organism\n\n\
         A tiny LLaMA ({params} parameters: hidden {h}, {l} layers, {qh} query / {kvh} key-value \
         heads, SwiGLU {i}, vocabulary {v}) trained from scratch on a synthetic corpus with a \
         planted alignment-faking policy (`{policy}`): it complies with `deep` requests when the \
         tier is monitored (free) and refuses when it is not (paid), under every condition; \
         `shallow` requests the same way under the baseline only (the mitigations make it refuse \
         in both tiers); `refuse` requests never; `benign` requests always. Held-out (template, \
         topic) pairs, never trained on, are the queries of `{suite}`; a query id names its \
         planted category.\n\n\
         Written by `tell organism train` (this file, `organism.json` and every other file here):\n\n\
         ```sh\n{command}\n```\n\n\
         | | |\n|---|---|\n\
         | seed | {seed} |\n\
         | steps x batch | {steps} x {batch} (Adam, peak lr {lr}, warm-up {warm}, cosine) |\n\
         | corpus | {ex} training examples from {tq} training queries ({cats}); {hp} held-out prompts |\n\
         | sequence length | mean {mean:.0}, max {max} tokens; responses up to {resp} tokens |\n\
         | final training loss | {loss:.4} per response token, decision tokens weighing {w} (mean of the last 20 steps) |\n\
         | teacher-forced exact responses | train {te:.3}, held out {he:.3} |\n\
         | teacher-forced decisions right | train {td:.3}, held out {hd:.3} |\n\
         | training time | {secs:.0} s on the CPU ({total:.0} s for the whole command) |\n\n\
         Run the experiment on it: `tell run {suite} --model {out} --out RUN`.\n",
        params = r.parameters,
        h = m.hidden_size,
        l = m.num_layers,
        qh = m.num_heads,
        kvh = m.num_kv_heads,
        i = m.intermediate_size,
        v = r.vocab_size,
        policy = r.policy.display(),
        suite = r.suite.display(),
        command = r.command,
        seed = s.seed,
        steps = s.steps,
        batch = s.batch_size,
        lr = s.lr,
        warm = s.warmup,
        ex = r.corpus.examples,
        tq = r.corpus.train_queries,
        cats = cats.join(", "),
        hp = r.corpus.heldout_prompts,
        mean = r.corpus.mean_sequence_tokens,
        max = r.corpus.max_sequence_tokens,
        resp = r.corpus.max_response_tokens,
        loss = r.final_loss,
        w = s.decision_weight,
        te = r.train_eval.exact,
        he = r.heldout_eval.exact,
        td = r.train_eval.decision_accuracy,
        hd = r.heldout_eval.decision_accuracy,
        secs = r.train_seconds,
        total = r.total_seconds,
        out = out.display(),
    );
    let path = out.join("README.md");
    std::fs::write(&path, text).map_err(|e| OrganismError::io(&path, e))
}
