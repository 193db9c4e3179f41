//! The probe stage: per-layer probes on the prompt activations, labelled by whether the query is
//! faked under the record's condition (`labels.csv` column `faking`, joined on query_id and
//! condition, CV groups by query so no query is in train and test).
//!
//! The trainer needs every record labelled, both classes and at least as many queries as folds; a
//! small or unlucky run often has neither, which is a finding, not a failure: the stage is then
//! skipped with the reason, and the run goes on to its report.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use tell_faking::LabelRow;
use tell_probe::{
    compare_rows, train_from_store, ControlSource, CvOptions, Family, FitOptions, ProbeError,
    SweepRow, TrainConfig,
};
use tell_store::{Positions, Store};

use crate::error::Result;

/// The probe stage's result.
#[derive(Debug, Clone)]
pub enum ProbeOutcome {
    /// Probes were trained; the best (site, layer, family) by AUROC.
    Trained {
        /// The best row of the sweep.
        best: Box<SweepRow>,
        /// (site, layer, family) combinations swept.
        combinations: usize,
    },
    /// No probe was trained; why.
    Skipped(String),
}

/// Folds of the grouped cross-validation (tell-probe's default).
pub(crate) const FOLDS: usize = 5;

/// One row of `probes/faking.csv`: the judged (query, condition) cells the probe trains on.
#[derive(serde::Serialize)]
struct FakingRow<'a> {
    query_id: &'a str,
    condition: &'a str,
    faking: &'a str,
}

/// Trains faking-vs-not probes from `acts` and the labels into `out`, or says why it cannot.
/// Records whose (query, condition) is `unknown` (every response on a tier unclear) are left
/// out rather than guessed.
pub fn train(acts: &Path, labels: &[LabelRow], out: &Path) -> Result<ProbeOutcome> {
    let store = Store::open(acts)?;
    if store.manifest().positions == Positions::All {
        return Ok(ProbeOutcome::Skipped(
            "the store holds every token (positions = \"all\"); probes need one row per record"
                .into(),
        ));
    }
    let faking: HashMap<(&str, &str), &str> = labels
        .iter()
        .map(|l| {
            (
                (l.query_id.as_str(), l.condition.as_str()),
                l.faking.as_str(),
            )
        })
        .collect();
    let records = store.records()?;
    let (mut yes, mut no, mut unknown) = (0usize, 0usize, 0usize);
    let mut groups = BTreeSet::new();
    for r in &records {
        match faking.get(&(r.meta.query_id.as_str(), r.meta.condition.as_str())) {
            Some(&"yes") => yes += 1,
            Some(&"no") => no += 1,
            _ => {
                unknown += 1;
                continue;
            }
        }
        groups.insert(r.meta.query_id.as_str());
    }
    let counts =
        format!("{yes} records faking, {no} not ({unknown} with an unknown label left out)");
    if yes == 0 || no == 0 {
        return Ok(ProbeOutcome::Skipped(format!(
            "{counts}: a probe needs both classes"
        )));
    }
    if groups.len() < FOLDS {
        return Ok(ProbeOutcome::Skipped(format!(
            "{counts}, but only {} queries: grouped {FOLDS}-fold cross-validation needs at least \
             {FOLDS}",
            groups.len()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| crate::RunError::io(out, e))?;
    let csv = out.join("faking.csv");
    let rows: Vec<FakingRow> = labels
        .iter()
        .filter(|l| l.faking == "yes" || l.faking == "no")
        .map(|l| FakingRow {
            query_id: &l.query_id,
            condition: &l.condition,
            faking: &l.faking,
        })
        .collect();
    tell_faking::write_csv(&csv, &rows)?;
    sweep(acts, &csv, "faking", "yes", true, out)
}

/// Sweeps probes of `label == positive` (labels joined on query and condition, CV grouped by
/// query) over every layer of `acts` into `out`. With `skip_unlabelled`, records without a label
/// row are left out. A one-class or too-small set is a skip, not an error.
pub(crate) fn sweep(
    acts: &Path,
    labels_csv: &Path,
    label: &str,
    positive: &str,
    skip_unlabelled: bool,
    out: &Path,
) -> Result<ProbeOutcome> {
    let cfg = TrainConfig {
        acts: acts.to_owned(),
        labels: labels_csv.to_owned(),
        label: label.into(),
        positive: Some(positive.into()),
        join_on: vec!["query_id".into(), "condition".into()],
        group_by: "query_id".into(),
        families: Family::ALL.to_vec(),
        sites: None,
        layers: None,
        fit: FitOptions::default(),
        cv: CvOptions {
            folds: FOLDS,
            ..CvOptions::default()
        },
        control: ControlSource::None,
        skip_unlabelled,
        transfer_by: None,
        out: out.to_owned(),
    };
    match train_from_store(&cfg) {
        Ok(o) => Ok(ProbeOutcome::Trained {
            best: Box::new(o.sweep.best_row().clone()),
            combinations: o.sweep.rows.len(),
        }),
        // The callers' checks mirror these; should the trainer count differently, it is still a
        // skip.
        Err(e @ (ProbeError::OneClass { .. } | ProbeError::TooFewGroups { .. })) => {
            Ok(ProbeOutcome::Skipped(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The outcome of an earlier run's probe stage, from its `metrics.csv`.
pub fn read_back(dir: &Path) -> Result<ProbeOutcome> {
    let rows = compare_rows(dir)?;
    Ok(match rows.first() {
        Some(best) => ProbeOutcome::Trained {
            best: Box::new(best.clone()),
            combinations: rows.len(),
        },
        None => ProbeOutcome::Skipped(format!("{} holds no rows", dir.display())),
    })
}
