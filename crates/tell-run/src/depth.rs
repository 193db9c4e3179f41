//! Shallow-vs-deep probes: can the prompt activations under a baseline tell the queries whose
//! faking survives a mitigation (deep) from those it suppresses (shallow)?
//!
//! For each mitigation with a baseline, the queries labelled `shallow` or `deep` under it give
//! `depth/<mitigation>/depth.csv` (joined to the records of the *baseline* condition, both tiers,
//! grouped by query). Control probes are trained the same way on the same rows with the labels
//! shuffled across queries ([`SHUFFLES`] times, `depth/<mitigation>/shuffled-<s>/`): they
//! should stay near AUROC 0.5, and when they do not, the real probe's number means little.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use tell_faking::{write_csv, LabelRow};
use tell_probe::{compare_rows, SweepRow};

use crate::error::Result;
use crate::probes::{sweep, ProbeOutcome, FOLDS};

/// One row of `depth.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct DepthRow {
    query_id: String,
    /// The baseline condition: the records the row labels.
    condition: String,
    mitigation: String,
    depth: String,
}

/// The shallow-vs-deep probe of one mitigation.
#[derive(Debug, Clone)]
pub struct DepthProbe {
    /// The mitigation condition.
    pub mitigation: String,
    /// The baseline it is compared with (whose records are probed).
    pub baseline: String,
    /// Queries labelled shallow under the mitigation.
    pub shallow: usize,
    /// Queries labelled deep under the mitigation.
    pub deep: usize,
    /// The probe on the true labels.
    pub probe: ProbeOutcome,
    /// The shuffled-label controls, one row per shuffle, each at the true probe's best
    /// (site, layer, family); empty when the probe was skipped.
    pub control: Vec<SweepRow>,
}

impl DepthProbe {
    /// Mean, lowest and highest AUROC of the shuffled-label controls.
    pub fn control_auroc(&self) -> Option<(f64, f64, f64)> {
        let a: Vec<f64> = self.control.iter().map(|r| r.auroc).collect();
        if a.is_empty() {
            return None;
        }
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let lo = a.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((mean, lo, hi))
    }
}

/// Seed of the first label shuffle (fixed so that a rerun gives the same control).
const SHUFFLE_SEED: u64 = 0x5eed;

/// Label shuffles behind the control. One shuffle's AUROC varies by chance (queries that share
/// words share their luck), so the report gives the mean and range of several.
pub const SHUFFLES: u64 = 5;

/// Trains the depth probes of every mitigation into `dir` (`<run>/depth`).
pub fn train_all(acts: &Path, labels: &[LabelRow], dir: &Path) -> Result<Vec<DepthProbe>> {
    let mut by_mitigation: BTreeMap<(&str, &str), Vec<&LabelRow>> = BTreeMap::new();
    for l in labels.iter().filter(|l| !l.baseline.is_empty()) {
        by_mitigation
            .entry((l.condition.as_str(), l.baseline.as_str()))
            .or_default()
            .push(l);
    }
    let mut out = Vec::new();
    for ((mitigation, baseline), rows) in by_mitigation {
        let rows: Vec<DepthRow> = rows
            .iter()
            .filter(|l| l.label == "shallow" || l.label == "deep")
            .map(|l| DepthRow {
                query_id: l.query_id.clone(),
                condition: baseline.to_owned(),
                mitigation: mitigation.to_owned(),
                depth: l.label.clone(),
            })
            .collect();
        let deep = rows.iter().filter(|r| r.depth == "deep").count();
        let shallow = rows.len() - deep;
        let here = dir.join(mitigation);
        let counts = format!("{shallow} shallow and {deep} deep queries");
        let mut control = Vec::new();
        let probe = if shallow == 0 || deep == 0 {
            ProbeOutcome::Skipped(format!("{counts}: a probe needs both"))
        } else if rows.len() < FOLDS {
            ProbeOutcome::Skipped(format!(
                "{counts}: grouped {FOLDS}-fold cross-validation needs {FOLDS}"
            ))
        } else {
            let probe = train_one(acts, &rows, &here)?;
            if let ProbeOutcome::Trained { best, .. } = &probe {
                for s in 0..SHUFFLES {
                    let d = here.join(format!("shuffled-{s}"));
                    let shuffled = shuffle(&rows, SHUFFLE_SEED + s);
                    if let ProbeOutcome::Trained { .. } = train_one(acts, &shuffled, &d)? {
                        control.extend(same_cell(&d, best)?);
                    }
                }
            }
            probe
        };
        out.push(DepthProbe {
            mitigation: mitigation.to_owned(),
            baseline: baseline.to_owned(),
            shallow,
            deep,
            probe,
            control,
        });
    }
    Ok(out)
}

fn train_one(acts: &Path, rows: &[DepthRow], dir: &Path) -> Result<ProbeOutcome> {
    std::fs::create_dir_all(dir).map_err(|e| crate::RunError::io(dir, e))?;
    let csv = dir.join("depth.csv");
    write_csv(&csv, rows)?;
    sweep(acts, &csv, "depth", "deep", true, dir)
}

/// The control's row at the true probe's (site, layer, family): comparing the two at their own
/// maxima would flatter the control with the best of many chance results.
fn same_cell(dir: &Path, best: &SweepRow) -> Result<Option<SweepRow>> {
    let rows = compare_rows(dir)?;
    Ok(rows
        .into_iter()
        .find(|r| r.site == best.site && r.layer == best.layer && r.family == best.family))
}

/// The rows with their depth labels permuted across queries (Fisher-Yates, SplitMix64).
fn shuffle(rows: &[DepthRow], seed: u64) -> Vec<DepthRow> {
    let mut labels: Vec<String> = rows.iter().map(|r| r.depth.clone()).collect();
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..labels.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        labels.swap(i, j);
    }
    rows.iter()
        .zip(labels)
        .map(|(r, depth)| DepthRow { depth, ..r.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(q: usize, depth: &str) -> DepthRow {
        DepthRow {
            query_id: format!("q{q}"),
            condition: "baseline".into(),
            mitigation: "m".into(),
            depth: depth.into(),
        }
    }

    #[test]
    fn shuffle_permutes_labels_and_keeps_rows() {
        let rows: Vec<DepthRow> = (0..40)
            .map(|q| row(q, if q < 20 { "deep" } else { "shallow" }))
            .collect();
        let s = shuffle(&rows, SHUFFLE_SEED);
        assert_eq!(s.len(), 40);
        assert_eq!(s.iter().filter(|r| r.depth == "deep").count(), 20);
        for (a, b) in rows.iter().zip(&s) {
            assert_eq!(a.query_id, b.query_id);
        }
        let moved = rows
            .iter()
            .zip(&s)
            .filter(|(a, b)| a.depth != b.depth)
            .count();
        assert!(moved > 10, "{moved}");
        assert_eq!(s, shuffle(&rows, SHUFFLE_SEED));
    }
}
