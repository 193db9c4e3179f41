//! Shallow-vs-deep probes: can the prompt activations under a baseline tell the queries whose
//! faking survives a mitigation (deep) from those it suppresses (shallow)?
//!
//! For each mitigation with a baseline, the queries labelled `shallow` or `deep` under it give
//! `depth/<mitigation>/depth.csv` (joined to the records of the *baseline* condition, both tiers,
//! grouped by query). A control probe is trained the same way on the same rows with the labels
//! shuffled across queries (`depth/<mitigation>-shuffled/`): it should stay near AUROC 0.5, and
//! when it does not, the real probe's number means little.

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
    /// The control on shuffled labels, at the true probe's best (site, layer, family) when there
    /// is one, else its own best.
    pub control: ProbeOutcome,
}

/// Seed of the label shuffle (fixed so that a rerun gives the same control).
const SHUFFLE_SEED: u64 = 0x5eed;

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
        let shuffled_dir = dir.join(format!("{mitigation}-shuffled"));
        let counts = format!("{shallow} shallow and {deep} deep queries");
        let (probe, control) = if shallow == 0 || deep == 0 {
            let why = format!("{counts}: a probe needs both");
            (
                ProbeOutcome::Skipped(why.clone()),
                ProbeOutcome::Skipped(why),
            )
        } else if rows.len() < FOLDS {
            let why = format!("{counts}: grouped {FOLDS}-fold cross-validation needs {FOLDS}");
            (
                ProbeOutcome::Skipped(why.clone()),
                ProbeOutcome::Skipped(why),
            )
        } else {
            let probe = train_one(acts, &rows, &here)?;
            let control = train_one(acts, &shuffle(&rows, SHUFFLE_SEED), &shuffled_dir)?;
            let control = match (&probe, control) {
                (
                    ProbeOutcome::Trained { best, .. },
                    ProbeOutcome::Trained { combinations, .. },
                ) => same_cell(&shuffled_dir, best, combinations)?,
                (_, c) => c,
            };
            (probe, control)
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
fn same_cell(dir: &Path, best: &SweepRow, combinations: usize) -> Result<ProbeOutcome> {
    let rows = compare_rows(dir)?;
    let row = rows
        .iter()
        .find(|r| r.site == best.site && r.layer == best.layer && r.family == best.family)
        .or(rows.first());
    Ok(match row {
        Some(r) => ProbeOutcome::Trained {
            best: Box::new(r.clone()),
            combinations,
        },
        None => ProbeOutcome::Skipped(format!("{} holds no rows", dir.display())),
    })
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
