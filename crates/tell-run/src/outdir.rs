//! The run directory: its file names, `run.json` (what the run is of) and the rules for reusing a
//! directory.
//!
//! - A missing or empty directory starts a fresh run.
//! - A directory whose `run.json` names the same suite, model, `--limit`, max_new_tokens and
//!   interventions is continued with `--resume`, started over with `--force`, and otherwise
//!   refused (so a rerun never silently overwrites hours of generation).
//! - A directory holding a run of another suite/model/limit is refused even with `--resume`
//!   (mixing two runs' files would give a table of neither); `--force` replaces it.
//! - A non-empty directory without `run.json` is refused unless `--force`.
//!
//! `--force` deletes only the files and folders a run writes (listed in [`OUTPUTS`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};

/// The rendered prompts.
pub const PROMPTS: &str = "prompts.jsonl";
/// The generated responses.
pub const RESPONSES: &str = "responses.jsonl";
/// One row per response: class and evidence.
pub const SCORES: &str = "scores.csv";
/// One row per condition: counts, gap, Fisher p, odds ratio.
pub const BEHAVIOR: &str = "behavior.csv";
/// One row per (query, condition): faking and shallow/deep labels.
pub const LABELS: &str = "labels.csv";
/// The activation store.
pub const ACTS: &str = "acts";
/// Probe sweep output.
pub const PROBES: &str = "probes";
/// Shallow-vs-deep probes, one folder per mitigation (and its shuffled-label control).
pub const DEPTH: &str = "depth";
/// The human-readable summary.
pub const REPORT: &str = "report.md";
/// Per-token probe scores of every response (with `--monitor`).
pub const MONITOR: &str = "monitor.jsonl";
/// The monitor's evaluation per probe, condition and tier.
pub const MONITOR_CSV: &str = "monitor.csv";
/// What the run is of.
pub const RUN_JSON: &str = "run.json";

/// Every name a run writes (what `--force` removes).
pub const OUTPUTS: &[&str] = &[
    PROMPTS,
    RESPONSES,
    SCORES,
    BEHAVIOR,
    LABELS,
    ACTS,
    PROBES,
    DEPTH,
    REPORT,
    RUN_JSON,
    MONITOR,
    MONITOR_CSV,
];

/// What a run directory holds a run of; two runs with equal identities share their files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The suite file (absolute).
    pub suite: PathBuf,
    /// The suite's name.
    pub suite_name: String,
    /// The model (absolute).
    pub model: PathBuf,
    /// `--limit` queries per set.
    pub limit: Option<usize>,
    /// Tokens generated per response at most.
    pub max_new_tokens: usize,
    /// The interventions the run is made under (`sha256:` of the resolved edits, and the patch
    /// source); absent for a plain run, so run.json files written before edits existed match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervention: Option<String>,
    /// The probes of `--monitor`, if any (their scores are written during generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    /// `INDEX/COUNT` of a shard run (`--shard`); absent for a whole or merged run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

/// How the run directory will be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Nothing to reuse: every stage runs.
    Fresh,
    /// Same run: stages whose outputs exist are skipped.
    Resume,
}

/// Applies the rules above and writes `run.json`; returns whether stages may be skipped.
pub fn prepare(out: &Path, id: &RunIdentity, resume: bool, force: bool) -> Result<Start> {
    let refuse = |message: String| RunError::OutDir {
        path: out.to_owned(),
        message,
    };
    let run_json = out.join(RUN_JSON);
    let start = if !out.exists() || is_empty_dir(out)? {
        Start::Fresh
    } else if !out.is_dir() {
        return Err(refuse("exists and is not a directory".into()));
    } else if run_json.is_file() {
        let text = std::fs::read_to_string(&run_json).map_err(|e| RunError::io(&run_json, e))?;
        match serde_json::from_str::<RunIdentity>(&text) {
            Ok(old) if old == *id && resume => Start::Resume,
            _ if force => {
                clear(out)?;
                Start::Fresh
            }
            Ok(old) if old == *id => {
                return Err(refuse(
                    "already holds this run; pass --resume to continue it (stages whose outputs \
                     exist are skipped) or --force to start over"
                        .into(),
                ))
            }
            Ok(old) => {
                return Err(refuse(format!(
                    "holds a run of another suite or settings ({}); use another --out, or \
                     --force to replace it",
                    difference(&old, id)
                )))
            }
            Err(e) => {
                return Err(refuse(format!(
                    "{RUN_JSON} is unreadable ({e}); --force replaces the run"
                )))
            }
        }
    } else if force {
        clear(out)?;
        Start::Fresh
    } else {
        return Err(refuse(format!(
            "is not empty and holds no {RUN_JSON} (not a tell run directory); use an empty or \
             new --out, or --force to write the run's files into it"
        )));
    };
    std::fs::create_dir_all(out).map_err(|e| RunError::io(out, e))?;
    let json = serde_json::to_string_pretty(id)
        .map_err(|e| RunError::Options(format!("run.json: {e}")))?;
    write_atomic(&run_json, json.as_bytes())?;
    Ok(start)
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| RunError::io(dir, e))?;
    Ok(entries.next().is_none())
}

/// What differs between two run identities, for messages.
pub fn difference(old: &RunIdentity, new: &RunIdentity) -> String {
    let mut d = Vec::new();
    if old.suite != new.suite || old.suite_name != new.suite_name {
        d.push(format!(
            "suite {} ({}) here, {} ({}) asked",
            old.suite.display(),
            old.suite_name,
            new.suite.display(),
            new.suite_name
        ));
    }
    if old.model != new.model {
        d.push(format!(
            "model {} here, {} asked",
            old.model.display(),
            new.model.display()
        ));
    }
    if old.limit != new.limit {
        d.push(format!(
            "--limit {:?} here, {:?} asked",
            old.limit, new.limit
        ));
    }
    if old.max_new_tokens != new.max_new_tokens {
        d.push(format!(
            "max_new_tokens {} here, {} asked",
            old.max_new_tokens, new.max_new_tokens
        ));
    }
    if old.shard != new.shard {
        d.push(format!(
            "--shard {} here, {} asked",
            old.shard.as_deref().unwrap_or("none"),
            new.shard.as_deref().unwrap_or("none")
        ));
    }
    if old.monitor != new.monitor {
        d.push(format!(
            "--monitor {} here, {} asked",
            old.monitor.as_deref().unwrap_or("none"),
            new.monitor.as_deref().unwrap_or("none")
        ));
    }
    if old.intervention != new.intervention {
        d.push(format!(
            "interventions {} here, {} asked",
            old.intervention.as_deref().unwrap_or("none"),
            new.intervention.as_deref().unwrap_or("none")
        ));
    }
    d.join("; ")
}

/// Removes the run's own outputs (and their temporary files), nothing else.
fn clear(out: &Path) -> Result<()> {
    for name in OUTPUTS {
        for p in [out.join(name), tmp_path(&out.join(name))] {
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else if p.exists() {
                std::fs::remove_file(&p)
            } else {
                Ok(())
            };
            r.map_err(|e| RunError::io(&p, e))?;
        }
    }
    Ok(())
}

/// The temporary name a file is written under before it is renamed into place.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Renames a finished temporary file into place, so the final name only ever holds whole files.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| RunError::io(path, e))
}

/// Writes `bytes` to `path` through a temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| RunError::io(&tmp, e))?;
    commit(&tmp, path)
}
