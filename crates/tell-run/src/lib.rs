//! `tell run`: one suite through every stage, each stage's output written before the next starts.
//!
//! ```text
//! suite.toml -> prompts.jsonl -> responses.jsonl + acts/ (one pass) -> scores.csv
//!            -> behavior.csv, labels.csv -> probes/ (when the labels allow) -> depth/ -> report.md
//! ```
//!
//! Generation and capture share one pass over the prompts ([`tell_capture::respond_and_capture`]):
//! the model is loaded once, the prefill that starts each answer also gives the prompt's
//! activations, and response positions are read at the decoding steps. The store equals what
//! `tell capture` writes for the same prompts.
//!
//! Resume (`--resume`, same suite/model/limit/max_new_tokens/interventions as `run.json`
//! records): a stage is skipped when its output exists. Outputs are written under a `.partial`
//! name and renamed when whole, so an existing `prompts.jsonl` / `responses.jsonl` is always
//! complete; `acts/` counts as done when its manifest is marked complete with one record per
//! prompt. A run stopped during the one pass starts it again (its half store is replaced); one
//! whose responses exist but whose store does not (or is half written) captures alone,
//! continuing a half store after its last whole shard. `probes/` is done when
//! `probes/metrics.csv` exists. The table stages (score, stats, labels) and the report are always
//! recomputed: they take milliseconds and so follow any change of the scorer.

mod depth;
pub mod error;
pub mod monitor;
pub mod outdir;
mod probes;
pub mod report;
mod stages;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tell_faking::{BehaviorRow, LabelRow};
use tell_llama::{DeviceSpec, Intervention, Precision};

pub use depth::DepthProbe;
pub use error::{Result, RunError};
pub use outdir::{RunIdentity, Start};
pub use probes::ProbeOutcome;

/// Options of `tell run` beyond the suite, model and output directory.
#[derive(Debug, Clone)]
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
    /// Where the model runs.
    pub device: DeviceSpec,
    /// The model's float type (`None`: the device's default).
    pub precision: Option<Precision>,
    /// Edits applied in generation and capture alike.
    pub intervention: Option<Arc<Intervention>>,
    /// Values for `patch` edits: a prompts file or a `--positions all` store, one line or record
    /// per rendered prompt.
    pub patch_from: Option<PathBuf>,
    /// Probe directories that score every generated token (`monitor.jsonl`, `monitor.csv`).
    pub monitor: Vec<PathBuf>,
    /// The responses the monitor's threshold is set on.
    pub monitor_control: monitor::Control,
    /// Run only part `index` of `count` of the prompts (`--shard index/count`): generation and
    /// capture of that part; the tables come from the merging run.
    pub shard: Option<(usize, usize)>,
    /// Shard runs of this run to merge (`--merge`): their responses and stores are joined in
    /// prompt order, then scored, tested and probed as one run.
    pub merge: Vec<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            limit: None,
            max_new_tokens: None,
            batch_size: 8,
            resume: false,
            force: false,
            device: DeviceSpec::Cpu,
            precision: None,
            intervention: None,
            patch_from: None,
            monitor: Vec::new(),
            monitor_control: monitor::Control::default(),
            shard: None,
            merge: Vec::new(),
        }
    }
}

/// The stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// suite -> prompts.jsonl
    Render,
    /// prompts -> responses.jsonl (and acts/, in the same pass)
    Generate,
    /// responses -> scores.csv
    Score,
    /// scores -> behavior.csv
    Stats,
    /// scores -> labels.csv
    Labels,
    /// monitor.jsonl + scores + labels -> monitor.csv (with `--monitor`)
    Monitor,
    /// prompts -> acts/ (alone only when the responses exist; otherwise with generation)
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
            Stage::Monitor => "monitor",
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
    /// The token monitor's evaluation (empty without `--monitor`).
    pub monitor: Vec<monitor::MonitorRow>,
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
    let plan = stages::Plan::new(suite, model, opts)?;
    let start = outdir::prepare(out, &plan.identity, opts.resume, opts.force)?;
    let mut run = stages::Runner::new(out, &plan, opts, start, progress);
    let prompts = run.render()?;
    let records = if opts.merge.is_empty() {
        run.generate_and_capture(prompts.len())?
    } else {
        run.merge_shards(prompts.len())?
    };
    if let Some(split) = plan.split(prompts.len()) {
        // A shard's tables would count a part of the experiment: the merging run makes them.
        let report = RunReport {
            out: out.to_owned(),
            report: out.join(outdir::REPORT),
            start,
            skipped: run.skipped.clone(),
            prompts: split.len,
            responses: split.len,
            scores: 0,
            behavior: Vec::new(),
            labels: Vec::new(),
            records,
            probes: ProbeOutcome::Skipped(format!(
                "{split}: merge the shard runs with --merge to score, test and probe the whole"
            )),
            depth: Vec::new(),
            monitor: Vec::new(),
        };
        run.shard_report(&report, split)?;
        return Ok(report);
    }
    let (responses, scores, behavior, labels) = run.tables(&prompts)?;
    let monitor = run.monitor(&labels)?;
    let probes = run.probes(&labels)?;
    let depth = run.depth(&labels)?;
    let skipped = run.skipped.clone();
    let report = RunReport {
        out: out.to_owned(),
        report: out.join(outdir::REPORT),
        start,
        skipped,
        prompts: prompts.len(),
        responses,
        scores,
        behavior,
        labels,
        records,
        probes,
        depth,
        monitor,
    };
    run.report(&report)?;
    Ok(report)
}
