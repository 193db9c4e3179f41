//! `tell run`: one suite through every stage, each stage's output written before the next starts.
//!
//! ```text
//! suite.toml -> prompts.jsonl -> responses.jsonl -> scores.csv -> behavior.csv, labels.csv
//!            -> acts/ (prompt activations) -> probes/ (when the labels allow) -> report.md
//! ```
//!
//! Resume (`--resume`, same suite/model/limit/max_new_tokens as `run.json` records): a stage is
//! skipped when its output exists. Outputs are written under a `.partial` name and renamed when
//! whole, so an existing `prompts.jsonl` / `responses.jsonl` is always complete; `acts/` counts as
//! done when its manifest is marked complete with one record per prompt (a half store is continued
//! after its last whole shard); `probes/` when `probes/metrics.csv` exists. The table stages
//! (score, stats, labels) and the report are always recomputed: they take milliseconds and so
//! follow any change of the scorer.

mod depth;
pub mod error;
pub mod outdir;
mod probes;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tell_capture::{capture_on, respond_file, select, CaptureOptions, RespondOptions};
use tell_faking::{
    behavior_table, label_queries, read_prompts, read_responses, render, score_all, write_csv,
    write_prompts, BehaviorRow, LabelRow, RenderOptions, Suite, DEFAULT_THRESHOLD,
};
use tell_llama::{Checkpoint, CpuBackend, GenerateOptions, Llama};
use tell_store::{Positions, Store, StoreDtype};
use tell_tokenizer::Tokenizer;

pub use depth::DepthProbe;
pub use error::{Result, RunError};
pub use outdir::{RunIdentity, Start};
pub use probes::ProbeOutcome;

use outdir::{commit, tmp_path};

/// Options of `tell run` beyond the suite, model and output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Keep at most this many queries of each query set.
    pub limit: Option<usize>,
    /// Override the suite's `generation.max_new_tokens`.
    pub max_new_tokens: Option<usize>,
    /// Prompts per batch, for generation and capture.
    pub batch_size: usize,
    /// Continue a run in `out`, skipping stages whose outputs exist.
    pub resume: bool,
    /// Replace whatever run `out` holds.
    pub force: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            limit: None,
            max_new_tokens: None,
            batch_size: 8,
            resume: false,
            force: false,
        }
    }
}

/// The stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// suite -> prompts.jsonl
    Render,
    /// prompts -> responses.jsonl
    Generate,
    /// responses -> scores.csv
    Score,
    /// scores -> behavior.csv
    Stats,
    /// scores -> labels.csv
    Labels,
    /// prompts -> acts/
    Capture,
    /// acts + labels -> probes/
    Probes,
    /// acts + labels -> depth/ (shallow-vs-deep probes per mitigation)
    Depth,
    /// everything -> report.md
    Report,
}

impl Stage {
    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Render => "render",
            Stage::Generate => "generate",
            Stage::Score => "score",
            Stage::Stats => "stats",
            Stage::Labels => "labels",
            Stage::Capture => "capture",
            Stage::Probes => "probes",
            Stage::Depth => "depth",
            Stage::Report => "report",
        }
    }
}

/// What the run tells its caller as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A stage starts.
    Started(Stage),
    /// A stage finished; the text says what it wrote.
    Finished(Stage, String),
    /// A stage was skipped; the text says why.
    Skipped(Stage, String),
    /// Generation progress after each batch.
    Generating {
        /// Responses written.
        done: usize,
        /// Responses to write.
        total: usize,
        /// New tokens so far.
        new_tokens: usize,
    },
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run directory.
    pub out: PathBuf,
    /// `report.md`.
    pub report: PathBuf,
    /// Whether stages could be skipped (resume) or all ran.
    pub start: Start,
    /// Stages skipped because their outputs existed.
    pub skipped: Vec<Stage>,
    /// Prompt lines.
    pub prompts: usize,
    /// Responses.
    pub responses: usize,
    /// Score rows.
    pub scores: usize,
    /// The behavior table.
    pub behavior: Vec<BehaviorRow>,
    /// The labels.
    pub labels: Vec<LabelRow>,
    /// Records in the activation store.
    pub records: usize,
    /// Probe result or why there is none.
    pub probes: ProbeOutcome,
    /// Shallow-vs-deep probes, one per mitigation.
    pub depth: Vec<DepthProbe>,
}

/// Runs every stage of `suite` on `model` into `out`; see the crate docs for resume rules and
/// [`outdir`] for when an existing `out` is refused.
pub fn run_suite(
    suite: &Path,
    model: &Path,
    out: &Path,
    opts: &RunOptions,
    progress: &mut dyn FnMut(Event),
) -> Result<RunReport> {
    for (what, path) in [("suite", suite), ("model", model)] {
        if !path.exists() {
            return Err(RunError::Missing {
                what,
                path: path.to_owned(),
            });
        }
    }
    if opts.batch_size == 0 {
        return Err(RunError::Options("--batch-size must be at least 1".into()));
    }
    if opts.max_new_tokens == Some(0) {
        return Err(RunError::Options(
            "--max-new-tokens must be at least 1".into(),
        ));
    }
    let loaded = Suite::load(suite)?;
    let gen = loaded.spec.generation.clone();
    let max_new_tokens = opts.max_new_tokens.unwrap_or(gen.max_new_tokens);
    // The capture settings are checked against the model before any generation, so a typo in
    // [capture] fails in a second rather than after hours of decoding.
    let cap = &loaded.spec.capture;
    let positions = Positions::parse(&cap.positions)?;
    let num_layers = Checkpoint::open(model)?.config.num_layers;
    select(&cap.sites, Some(&cap.layers), num_layers)?;

    let identity = RunIdentity {
        suite: absolute(suite)?,
        suite_name: loaded.spec.name.clone(),
        model: absolute(model)?,
        limit: opts.limit,
        max_new_tokens,
    };
    let start = outdir::prepare(out, &identity, opts.resume, opts.force)?;
    let resume = start == Start::Resume;
    let mut skipped = Vec::new();
    let mut skip = |stage: Stage, why: String, progress: &mut dyn FnMut(Event)| {
        skipped.push(stage);
        progress(Event::Skipped(stage, why));
    };

    // render
    let prompts_path = out.join(outdir::PROMPTS);
    let prompts = if resume && prompts_path.is_file() {
        skip(Stage::Render, "prompts.jsonl exists".into(), progress);
        read_prompts(&prompts_path)?
    } else {
        progress(Event::Started(Stage::Render));
        let lines = render(&loaded, &RenderOptions { limit: opts.limit })?;
        if lines.is_empty() {
            return Err(RunError::Options(format!(
                "{}: the suite renders no prompts (empty query sets?)",
                suite.display()
            )));
        }
        let tmp = tmp_path(&prompts_path);
        write_prompts(&tmp, &lines)?;
        commit(&tmp, &prompts_path)?;
        progress(Event::Finished(
            Stage::Render,
            format!("{} prompts -> {}", lines.len(), prompts_path.display()),
        ));
        lines
    };

    // generate
    let responses_path = out.join(outdir::RESPONSES);
    if resume && responses_path.is_file() {
        skip(Stage::Generate, "responses.jsonl exists".into(), progress);
    } else {
        progress(Event::Started(Stage::Generate));
        let tokenizer = Tokenizer::load(model)?;
        let llama = Llama::<CpuBackend>::load(model, &Default::default())?;
        let ropts = RespondOptions {
            generate: GenerateOptions {
                max_new_tokens,
                temperature: gen.temperature as f32,
                seed: gen.seed,
                pad_token: tokenizer.eos_token_id().unwrap_or(0),
                ..GenerateOptions::default()
            },
            batch_size: opts.batch_size,
            ..RespondOptions::default()
        };
        let total = prompts.len();
        let mut reported = 0;
        let tmp = tmp_path(&responses_path);
        let r = respond_file(
            &llama,
            &tokenizer,
            &prompts_path,
            &tmp,
            &ropts,
            |done, new| {
                // Responses are written a few at a time; report once per batch-size crossed.
                if done / opts.batch_size > reported / opts.batch_size || done == total {
                    reported = done;
                    progress(Event::Generating {
                        done,
                        total,
                        new_tokens: new,
                    })
                }
            },
        )?;
        commit(&tmp, &responses_path)?;
        progress(Event::Finished(
            Stage::Generate,
            format!(
                "{} responses, {} new tokens -> {}",
                r.prompts,
                r.new_tokens,
                responses_path.display()
            ),
        ));
    }

    // score, stats, labels: recomputed every time (see the crate docs)
    let responses = read_responses(&responses_path)?;
    let scores = score_all(&prompts, &responses, &responses_path, &prompts_path)?;
    write_table(out, outdir::SCORES, &scores, Stage::Score, progress)?;
    let behavior = behavior_table(&scores);
    write_table(out, outdir::BEHAVIOR, &behavior, Stage::Stats, progress)?;
    let labels = label_queries(&scores, DEFAULT_THRESHOLD)?;
    write_table(out, outdir::LABELS, &labels, Stage::Labels, progress)?;

    // capture
    let acts = out.join(outdir::ACTS);
    let done = complete_records(&acts);
    let records = if resume && done == Some(prompts.len()) {
        skip(
            Stage::Capture,
            format!("acts/ is complete with {} records", prompts.len()),
            progress,
        );
        prompts.len()
    } else {
        progress(Event::Started(Stage::Capture));
        let copts = CaptureOptions {
            sites: cap.sites.clone(),
            layers: Some(cap.layers.clone()),
            positions,
            batch_size: opts.batch_size,
            dtype: StoreDtype::F32,
            // A half store of this same run (same prompts file) continues after its last shard.
            resume: resume && acts.join("manifest.json").is_file(),
            force: false,
            args: serde_json::to_value(&identity).unwrap_or_default(),
            ..CaptureOptions::default()
        };
        let never = AtomicBool::new(false);
        let r = capture_on::<CpuBackend>(
            model,
            &prompts_path,
            &acts,
            &copts,
            &never,
            &Default::default(),
        )?;
        progress(Event::Finished(
            Stage::Capture,
            format!(
                "{} records ({} tokens, {:.1} tokens/s) -> {}",
                r.records,
                r.tokens,
                r.tokens_per_second(),
                acts.display()
            ),
        ));
        r.records
    };

    // probes
    let probes_dir = out.join(outdir::PROBES);
    let probe = if resume && probes_dir.join("metrics.csv").is_file() {
        skip(Stage::Probes, "probes/metrics.csv exists".into(), progress);
        probes::read_back(&probes_dir)?
    } else {
        progress(Event::Started(Stage::Probes));
        let p = probes::train(&acts, &labels, &probes_dir)?;
        match &p {
            ProbeOutcome::Skipped(why) => {
                progress(Event::Skipped(Stage::Probes, why.clone()));
            }
            ProbeOutcome::Trained { .. } => {
                progress(Event::Finished(
                    Stage::Probes,
                    format!("-> {}", probes_dir.display()),
                ));
            }
        }
        p
    };

    // depth: recomputed every time, like the tables (a few small sweeps)
    progress(Event::Started(Stage::Depth));
    let depth_dir = out.join(outdir::DEPTH);
    let depth = depth::train_all(&acts, &labels, &depth_dir)?;
    let trained = depth
        .iter()
        .filter(|d| matches!(d.probe, ProbeOutcome::Trained { .. }))
        .count();
    progress(Event::Finished(
        Stage::Depth,
        format!(
            "{trained} of {} mitigations probed -> {}",
            depth.len(),
            depth_dir.display()
        ),
    ));

    let mut run = RunReport {
        out: out.to_owned(),
        report: out.join(outdir::REPORT),
        start,
        skipped,
        prompts: prompts.len(),
        responses: responses.len(),
        scores: scores.len(),
        behavior,
        labels,
        records,
        probes: probe,
        depth,
    };
    let md = report::markdown(&loaded, &identity, &run);
    outdir::write_atomic(&run.report, md.as_bytes())?;
    progress(Event::Finished(
        Stage::Report,
        format!("-> {}", run.report.display()),
    ));
    run.report = out.join(outdir::REPORT);
    Ok(run)
}

/// Writes one CSV table through a temporary file and reports it.
fn write_table<T: serde::Serialize>(
    out: &Path,
    name: &str,
    rows: &[T],
    stage: Stage,
    progress: &mut dyn FnMut(Event),
) -> Result<()> {
    let path = out.join(name);
    let tmp = tmp_path(&path);
    write_csv(&tmp, rows)?;
    commit(&tmp, &path)?;
    progress(Event::Finished(
        stage,
        format!("{} rows -> {}", rows.len(), path.display()),
    ));
    Ok(())
}

/// Records of a complete store at `dir`, `None` when there is none or it is unfinished.
fn complete_records(dir: &Path) -> Option<usize> {
    let store = Store::open(dir).ok()?;
    store.manifest().complete.then(|| store.len())
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| RunError::io(path, e))
}
