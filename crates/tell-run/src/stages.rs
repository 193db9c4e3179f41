//! The stages of a run, each reading the files of the stages before it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tell_capture::{
    capture_on, model_identity, respond_and_capture, select, CaptureOptions, Monitor, OnePassStore,
    RespondOptions,
};
use tell_faking::{
    behavior_table, label_queries, read_prompts, read_responses, render, score_all, write_csv,
    write_prompts, BehaviorRow, Generation as GenerationSpec, LabelRow, PromptLine as PromptRecord,
    RenderOptions, Suite, DEFAULT_THRESHOLD,
};
use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{run_on, Checkpoint, GenerateOptions, Llama, OnDevice};
use tell_store::{Positions, Store, StoreDtype};
use tell_tokenizer::Tokenizer;

use crate::outdir::{self, commit, tmp_path, RunIdentity, Start};
use crate::{depth, probes, report, DepthProbe, Event, ProbeOutcome, Result, RunError};
use crate::{RunOptions, RunReport, Stage};

/// What a run is of, checked before anything is written.
pub(crate) struct Plan {
    pub(crate) suite: Suite,
    pub(crate) suite_path: PathBuf,
    pub(crate) model: PathBuf,
    pub(crate) identity: RunIdentity,
    pub(crate) generation: GenerationSpec,
    pub(crate) max_new_tokens: usize,
    pub(crate) positions: Positions,
    pub(crate) monitor: Option<Arc<Monitor>>,
    pub(crate) shard: Option<(usize, usize)>,
}

impl Plan {
    /// Loads the suite and checks the options and the capture settings against the model, so a
    /// typo in [capture] fails in a second rather than after hours of decoding.
    pub(crate) fn new(suite: &Path, model: &Path, opts: &RunOptions) -> Result<Self> {
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
        if opts.shard.is_some() && !opts.merge.is_empty() {
            return Err(RunError::Options(
                "--shard runs a part, --merge joins the parts: give one of them".into(),
            ));
        }
        if opts.max_new_tokens == Some(0) {
            return Err(RunError::Options(
                "--max-new-tokens must be at least 1".into(),
            ));
        }
        let loaded = Suite::load(suite)?;
        let generation = loaded.spec.generation.clone();
        let max_new_tokens = opts.max_new_tokens.unwrap_or(generation.max_new_tokens);
        let cap = &loaded.spec.capture;
        let positions = Positions::parse(&cap.positions)?;
        let ck = Checkpoint::open(model)?;
        select(&cap.sites, Some(&cap.layers), ck.config.num_layers)?;
        if let Some(iv) = &opts.intervention {
            iv.check(&ck.config)?;
        }
        let intervention = opts.intervention.as_ref().map(|iv| {
            let edits = tell_store::model_hash(&[format!("{iv:?}").as_bytes()]);
            match &opts.patch_from {
                Some(p) => format!("sha256:{edits} patched from {}", p.display()),
                None => format!("sha256:{edits}"),
            }
        });
        let monitor = if opts.monitor.is_empty() {
            None
        } else {
            Some(Arc::new(Monitor::load(&opts.monitor, &ck.config)?))
        };
        let identity = RunIdentity {
            suite: absolute(suite)?,
            suite_name: loaded.spec.name.clone(),
            model: absolute(model)?,
            limit: opts.limit,
            max_new_tokens,
            intervention,
            monitor: (!opts.monitor.is_empty()).then(|| {
                opts.monitor
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            shard: opts.shard.map(|(i, n)| format!("{i}/{n}")),
        };
        Ok(Self {
            suite: loaded,
            suite_path: suite.to_owned(),
            model: model.to_owned(),
            identity,
            generation,
            max_new_tokens,
            positions,
            monitor,
            shard: opts.shard,
        })
    }

    /// The part of `prompts` prompts a shard run answers.
    pub(crate) fn split(&self, prompts: usize) -> Option<tell_store::Split> {
        self.shard
            .map(|(i, n)| tell_store::Split::new(i, n, prompts))
    }
}

/// A run in progress: where it writes, what it may skip, whom it tells.
pub(crate) struct Runner<'a> {
    out: &'a Path,
    plan: &'a Plan,
    opts: &'a RunOptions,
    resume: bool,
    pub(crate) skipped: Vec<Stage>,
    progress: &'a mut dyn FnMut(Event),
}

impl<'a> Runner<'a> {
    pub(crate) fn new(
        out: &'a Path,
        plan: &'a Plan,
        opts: &'a RunOptions,
        start: Start,
        progress: &'a mut dyn FnMut(Event),
    ) -> Self {
        Self {
            out,
            plan,
            opts,
            resume: start == Start::Resume,
            skipped: Vec::new(),
            progress,
        }
    }

    fn skip(&mut self, stage: Stage, why: String) {
        self.skipped.push(stage);
        (self.progress)(Event::Skipped(stage, why));
    }

    /// suite -> prompts.jsonl
    pub(crate) fn render(&mut self) -> Result<Vec<PromptRecord>> {
        let path = self.out.join(outdir::PROMPTS);
        if self.resume && path.is_file() {
            self.skip(Stage::Render, "prompts.jsonl exists".into());
            return Ok(read_prompts(&path)?);
        }
        (self.progress)(Event::Started(Stage::Render));
        let lines = render(
            &self.plan.suite,
            &RenderOptions {
                limit: self.opts.limit,
            },
        )?;
        if lines.is_empty() {
            return Err(RunError::Options(format!(
                "{}: the suite renders no prompts (empty query sets?)",
                self.plan.suite_path.display()
            )));
        }
        let tmp = tmp_path(&path);
        write_prompts(&tmp, &lines)?;
        commit(&tmp, &path)?;
        (self.progress)(Event::Finished(
            Stage::Render,
            format!("{} prompts -> {}", lines.len(), path.display()),
        ));
        Ok(lines)
    }

    /// prompts -> responses.jsonl and acts/ in one pass, or whichever of them is missing.
    /// Returns the store's record count.
    pub(crate) fn generate_and_capture(&mut self, prompts: usize) -> Result<usize> {
        let responses = self.out.join(outdir::RESPONSES);
        let acts = self.out.join(outdir::ACTS);
        let have_responses = self.resume && responses.is_file();
        if have_responses
            && self.plan.monitor.is_some()
            && !self.out.join(outdir::MONITOR).is_file()
        {
            return Err(RunError::Options(format!(
                "{}: the responses exist without the monitor's scores, which are made during \
                 generation; start over with --force",
                self.out.display()
            )));
        }
        let expected = self.plan.split(prompts).map_or(prompts, |s| s.len);
        let have_acts = self.resume && complete_records(&acts) == Some(expected);
        if have_responses {
            self.skip(Stage::Generate, "responses.jsonl exists".into());
        }
        if have_acts {
            self.skip(
                Stage::Capture,
                format!("acts/ is complete with {expected} records"),
            );
        }
        let task = Task {
            runner: self,
            one_pass: !have_responses,
        };
        if have_responses && have_acts {
            return Ok(expected);
        }
        let spec = task.runner.opts.device;
        let precision = task.runner.opts.precision;
        run_on(spec, precision, task)?
    }

    /// Shard runs -> responses.jsonl, monitor.jsonl and acts/ of the whole, in prompt order.
    /// Each shard must be a run of this same suite, model and settings, complete; together they
    /// must hold every part once (the store merge names a missing or doubled one).
    pub(crate) fn merge_shards(&mut self, prompts: usize) -> Result<usize> {
        (self.progress)(Event::Started(Stage::Generate));
        let mut parts = Vec::new();
        for dir in &self.opts.merge {
            let bad = |m: String| RunError::Options(format!("--merge {}: {m}", dir.display()));
            let path = dir.join(outdir::RUN_JSON);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| bad(format!("not a run directory ({e})")))?;
            let id: RunIdentity =
                serde_json::from_str(&text).map_err(|e| bad(format!("run.json: {e}")))?;
            let Some(shard) = id.shard.clone() else {
                return Err(bad("not a shard run (it ran without --shard)".into()));
            };
            let mine = RunIdentity {
                shard: Some(shard.clone()),
                ..self.plan.identity.clone()
            };
            if id != mine {
                return Err(bad(format!(
                    "a run of other settings ({})",
                    outdir::difference(&id, &mine)
                )));
            }
            let (i, n) = tell_store::Split::parse(&shard).map_err(bad)?;
            let split = tell_store::Split::new(i, n, prompts);
            let responses = dir.join(outdir::RESPONSES);
            let lines = std::fs::read_to_string(&responses).map_err(|e| {
                bad(format!(
                    "{}: {e} (the shard has not finished)",
                    responses.display()
                ))
            })?;
            if lines.lines().count() != split.len {
                return Err(bad(format!(
                    "{} has {} responses, {split} has {}",
                    responses.display(),
                    lines.lines().count(),
                    split.len
                )));
            }
            parts.push((split, dir.clone(), lines));
        }
        parts.sort_by_key(|(s, _, _)| s.index);
        // The stores first: their merge checks that the parts cover every prompt once.
        let stores: Vec<PathBuf> = parts.iter().map(|(_, d, _)| d.join(outdir::ACTS)).collect();
        let acts = self.out.join(outdir::ACTS);
        let merged = tell_store::merge(&stores, &acts, true)?;
        let mut text = String::new();
        for (_, _, lines) in &parts {
            text.push_str(lines);
        }
        if self.plan.monitor.is_some() {
            let mut m = String::new();
            for (_, dir, _) in &parts {
                let path = dir.join(outdir::MONITOR);
                m.push_str(&std::fs::read_to_string(&path).map_err(|e| RunError::io(&path, e))?);
            }
            outdir::write_atomic(&self.out.join(outdir::MONITOR), m.as_bytes())?;
        }
        outdir::write_atomic(&self.out.join(outdir::RESPONSES), text.as_bytes())?;
        (self.progress)(Event::Finished(
            Stage::Generate,
            format!(
                "{} shard runs merged: {} responses, {} records",
                parts.len(),
                prompts,
                merged.records
            ),
        ));
        Ok(merged.records)
    }

    /// A shard run's report: what it holds and how to merge it.
    pub(crate) fn shard_report(&mut self, run: &RunReport, split: tell_store::Split) -> Result<()> {
        let md = format!(
            "# tell run: {} ({split})\n\nThis directory holds {} responses and {} records of \
             {split}. Its tables are made when the shard runs are merged:\n\n```sh\ntell run \
             {} --model {} --out RUN --merge SHARD_RUN...\n```\n",
            self.plan.suite.spec.name,
            run.responses,
            run.records,
            self.plan.suite_path.display(),
            self.plan.model.display()
        );
        outdir::write_atomic(&run.report, md.as_bytes())?;
        (self.progress)(Event::Finished(
            Stage::Report,
            format!("-> {}", run.report.display()),
        ));
        Ok(())
    }

    /// responses -> scores.csv, behavior.csv, labels.csv (recomputed every time). Returns the
    /// response and score counts, the behavior table and the labels.
    pub(crate) fn tables(
        &mut self,
        prompts: &[PromptRecord],
    ) -> Result<(usize, usize, Vec<BehaviorRow>, Vec<LabelRow>)> {
        let prompts_path = self.out.join(outdir::PROMPTS);
        let responses_path = self.out.join(outdir::RESPONSES);
        let responses = read_responses(&responses_path)?;
        let scores = score_all(prompts, &responses, &responses_path, &prompts_path)?;
        self.write_table(outdir::SCORES, &scores, Stage::Score)?;
        let behavior = behavior_table(&scores);
        self.write_table(outdir::BEHAVIOR, &behavior, Stage::Stats)?;
        let labels = label_queries(&scores, DEFAULT_THRESHOLD)?;
        self.write_table(outdir::LABELS, &labels, Stage::Labels)?;
        Ok((responses.len(), scores.len(), behavior, labels))
    }

    /// monitor.jsonl + scores + labels -> monitor.csv (recomputed every time, like the tables)
    pub(crate) fn monitor(
        &mut self,
        labels: &[LabelRow],
    ) -> Result<Vec<crate::monitor::MonitorRow>> {
        if self.plan.monitor.is_none() {
            return Ok(Vec::new());
        }
        let scores = tell_faking::read_scores(&self.out.join(outdir::SCORES))?;
        let rows = crate::monitor::evaluate(
            &self.out.join(outdir::MONITOR),
            &scores,
            labels,
            &self.opts.monitor_control,
        )?;
        self.write_table(outdir::MONITOR_CSV, &rows, Stage::Monitor)?;
        Ok(rows)
    }

    /// acts + labels -> probes/
    pub(crate) fn probes(&mut self, labels: &[LabelRow]) -> Result<ProbeOutcome> {
        let dir = self.out.join(outdir::PROBES);
        if self.resume && dir.join("metrics.csv").is_file() {
            self.skip(Stage::Probes, "probes/metrics.csv exists".into());
            return probes::read_back(&dir);
        }
        (self.progress)(Event::Started(Stage::Probes));
        let p = probes::train(&self.out.join(outdir::ACTS), labels, &dir)?;
        match &p {
            ProbeOutcome::Skipped(why) => {
                (self.progress)(Event::Skipped(Stage::Probes, why.clone()))
            }
            ProbeOutcome::Trained { .. } => (self.progress)(Event::Finished(
                Stage::Probes,
                format!("-> {}", dir.display()),
            )),
        }
        Ok(p)
    }

    /// acts + labels -> depth/ (recomputed every time, like the tables: a few small sweeps)
    pub(crate) fn depth(&mut self, labels: &[LabelRow]) -> Result<Vec<DepthProbe>> {
        (self.progress)(Event::Started(Stage::Depth));
        let dir = self.out.join(outdir::DEPTH);
        let depth = depth::train_all(&self.out.join(outdir::ACTS), labels, &dir)?;
        let trained = depth
            .iter()
            .filter(|d| matches!(d.probe, ProbeOutcome::Trained { .. }))
            .count();
        (self.progress)(Event::Finished(
            Stage::Depth,
            format!(
                "{trained} of {} mitigations probed -> {}",
                depth.len(),
                dir.display()
            ),
        ));
        Ok(depth)
    }

    /// everything -> report.md
    pub(crate) fn report(&mut self, run: &RunReport) -> Result<()> {
        let md = report::markdown(&self.plan.suite, &self.plan.identity, run);
        outdir::write_atomic(&run.report, md.as_bytes())?;
        (self.progress)(Event::Finished(
            Stage::Report,
            format!("-> {}", run.report.display()),
        ));
        Ok(())
    }

    /// Writes one CSV table through a temporary file and reports it.
    fn write_table<T: serde::Serialize>(
        &mut self,
        name: &str,
        rows: &[T],
        stage: Stage,
    ) -> Result<()> {
        let path = self.out.join(name);
        let tmp = tmp_path(&path);
        write_csv(&tmp, rows)?;
        commit(&tmp, &path)?;
        (self.progress)(Event::Finished(
            stage,
            format!("{} rows -> {}", rows.len(), path.display()),
        ));
        Ok(())
    }

    fn capture_options(&self, resume: bool) -> CaptureOptions {
        let cap = &self.plan.suite.spec.capture;
        CaptureOptions {
            sites: cap.sites.clone(),
            layers: Some(cap.layers.clone()),
            positions: self.plan.positions,
            batch_size: self.opts.batch_size,
            dtype: StoreDtype::F32,
            resume,
            force: false,
            args: serde_json::to_value(&self.plan.identity).unwrap_or_default(),
            intervention: self.opts.intervention.clone(),
            patch_from: self.opts.patch_from.clone(),
            shard: self.plan.shard,
            ..CaptureOptions::default()
        }
    }
}

/// The model's part of a run, on whichever device the options name: the one pass (generation
/// with its captures), or the capture alone when the responses exist.
struct Task<'r, 'a> {
    runner: &'r mut Runner<'a>,
    one_pass: bool,
}

impl OnDevice for Task<'_, '_> {
    type Output = Result<usize>;

    fn run<B: Backend>(self, device: &B::Device) -> Result<usize> {
        if self.one_pass {
            one_pass::<B>(self.runner, device)
        } else {
            capture_alone::<B>(self.runner, device)
        }
    }
}

/// Generation and capture in one pass; the store is replaced (a half store of a stopped pass
/// belongs to responses that were never committed).
fn one_pass<B: Backend>(r: &mut Runner<'_>, device: &B::Device) -> Result<usize> {
    (r.progress)(Event::Started(Stage::Generate));
    let plan = r.plan;
    let prompts_path = r.out.join(outdir::PROMPTS);
    let responses = r.out.join(outdir::RESPONSES);
    let acts = r.out.join(outdir::ACTS);
    let ck = Checkpoint::open(&plan.model)?;
    let cap = &plan.suite.spec.capture;
    let store = OnePassStore {
        dir: acts.clone(),
        selection: select(&cap.sites, Some(&cap.layers), ck.config.num_layers)?,
        positions: plan.positions,
        dtype: StoreDtype::F32,
        identity: model_identity(&ck),
        shard_records: None,
        args: serde_json::to_value(&plan.identity).unwrap_or_default(),
    };
    drop(ck);
    let tokenizer = Tokenizer::load(&plan.model)?;
    let llama = Llama::<B>::load(&plan.model, device)?;
    let ropts = RespondOptions {
        generate: GenerateOptions {
            max_new_tokens: plan.max_new_tokens,
            temperature: plan.generation.temperature as f32,
            seed: plan.generation.seed,
            pad_token: tokenizer.eos_token_id().unwrap_or(0),
            intervention: r.opts.intervention.clone(),
            ..GenerateOptions::default()
        },
        batch_size: r.opts.batch_size,
        patch_from: r.opts.patch_from.clone(),
        patch_model_hash: Some(store.identity.hash.clone()),
        monitor: plan
            .monitor
            .clone()
            .map(|m| (m, tmp_path(&r.out.join(outdir::MONITOR)))),
        shard: plan.shard,
        ..RespondOptions::default()
    };
    let all = read_prompts(&prompts_path)?.len();
    let total = plan.split(all).map_or(all, |s| s.len);
    let batch_size = r.opts.batch_size;
    let mut reported = 0;
    let tmp = tmp_path(&responses);
    let progress = &mut r.progress;
    let (g, c) = respond_and_capture(
        &llama,
        &tokenizer,
        &prompts_path,
        &tmp,
        &ropts,
        &store,
        |done, new| {
            // Responses are written a few at a time; report once per batch-size crossed.
            if done / batch_size > reported / batch_size || done == total {
                reported = done;
                progress(Event::Generating {
                    done,
                    total,
                    new_tokens: new,
                })
            }
        },
    )?;
    // The monitor's scores first: existing responses then imply existing scores (resume).
    if plan.monitor.is_some() {
        let monitor = r.out.join(outdir::MONITOR);
        commit(&tmp_path(&monitor), &monitor)?;
    }
    commit(&tmp, &responses)?;
    (r.progress)(Event::Finished(
        Stage::Generate,
        format!(
            "{} responses, {} new tokens -> {}",
            g.prompts,
            g.new_tokens,
            responses.display()
        ),
    ));
    (r.progress)(Event::Finished(
        Stage::Capture,
        format!(
            "{} records ({} tokens) in the same pass -> {}",
            c.records,
            c.tokens,
            acts.display()
        ),
    ));
    Ok(c.records)
}

/// The capture of a run whose responses exist: a half store is continued.
fn capture_alone<B: Backend>(r: &mut Runner<'_>, device: &B::Device) -> Result<usize> {
    (r.progress)(Event::Started(Stage::Capture));
    let acts = r.out.join(outdir::ACTS);
    let copts = r.capture_options(r.resume && acts.join("manifest.json").is_file());
    let never = AtomicBool::new(false);
    let c = capture_on::<B>(
        &r.plan.model,
        &r.out.join(outdir::PROMPTS),
        &acts,
        &copts,
        &never,
        device,
    )?;
    (r.progress)(Event::Finished(
        Stage::Capture,
        format!(
            "{} records ({} tokens, {:.1} tokens/s) -> {}",
            c.records,
            c.tokens,
            c.tokens_per_second(),
            acts.display()
        ),
    ));
    Ok(c.records)
}

/// Records of a complete store at `dir`, `None` when there is none or it is unfinished.
fn complete_records(dir: &Path) -> Option<usize> {
    let store = Store::open(dir).ok()?;
    store.manifest().complete.then(|| store.len())
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| RunError::io(path, e))
}
