//! Layer sweep: every (site, layer, position) matrix x every probe family, cross-validated in
//! parallel (rayon over combinations and over folds), one `metrics.csv` row per combination and
//! the best combination named.

use crate::cv::{cross_validate, Control, CvOptions};
use crate::data::Matrix;
use crate::error::{ProbeError, Result};
use crate::probe::{Family, FitOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One activation matrix of the sweep (rows aligned with the shared labels and groups).
#[derive(Clone, Debug)]
pub struct SweepInput<'a> {
    /// Capture site, e.g. `hook_resid_post`.
    pub site: String,
    /// Layer index.
    pub layer: usize,
    /// Token position, e.g. `last`.
    pub position: String,
    /// Records x features at this site/layer/position.
    pub matrix: Matrix<'a>,
    /// Control rows at the same site/layer/position (e.g. benign prompts), if any.
    pub control: Option<Matrix<'a>>,
}

/// One `metrics.csv` row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Capture site.
    pub site: String,
    /// Layer.
    pub layer: usize,
    /// Token position.
    pub position: String,
    /// Probe family.
    pub family: Family,
    /// Pooled AUROC (mean over seeds).
    pub auroc: f64,
    /// Lower end of its bootstrap interval.
    pub auroc_lo: f64,
    /// Upper end.
    pub auroc_hi: f64,
    /// Pooled accuracy at threshold 0.
    pub accuracy: f64,
    /// Pooled balanced accuracy at threshold 0.
    pub balanced_accuracy: f64,
    /// Pooled recall at the target FPR.
    pub recall_at_fpr: f64,
    /// Target FPR.
    pub fpr: f64,
    /// Threshold source.
    pub threshold_source: String,
    /// Median L2 strength chosen over folds (logreg).
    pub l2: Option<f64>,
    /// Rows evaluated.
    pub n_rows: usize,
    /// Groups evaluated.
    pub n_groups: usize,
}

/// All rows plus the index of the best one (highest AUROC; ties: higher lower bound, then the
/// earlier layer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// Rows in input order x family order.
    pub rows: Vec<SweepRow>,
    /// Index into `rows` of the best combination.
    pub best: usize,
}

impl SweepResult {
    /// The best row.
    pub fn best_row(&self) -> &SweepRow {
        &self.rows[self.best]
    }

    /// Rows ordered best first (AUROC, then interval lower bound), for `tell probe compare`.
    pub fn ranking(&self) -> Vec<&SweepRow> {
        rank(&self.rows)
    }
}

/// Orders rows best first: higher AUROC, then higher interval lower bound, then earlier layer.
pub fn rank(rows: &[SweepRow]) -> Vec<&SweepRow> {
    let mut v: Vec<&SweepRow> = rows.iter().collect();
    let lo = |r: &SweepRow| {
        if r.auroc_lo.is_nan() {
            f64::NEG_INFINITY
        } else {
            r.auroc_lo
        }
    };
    v.sort_by(|a, b| {
        b.auroc
            .total_cmp(&a.auroc)
            .then(lo(b).total_cmp(&lo(a)))
            .then(a.layer.cmp(&b.layer))
    });
    v
}

/// Runs the sweep; `control_name` labels the control matrices in the reports.
pub fn sweep(
    inputs: &[SweepInput],
    labels: &[bool],
    groups: &[u32],
    families: &[Family],
    fit: &FitOptions,
    cv: &CvOptions,
    control_name: &str,
) -> Result<SweepResult> {
    if inputs.is_empty() || families.is_empty() {
        return Err(ProbeError::InvalidOption {
            name: "sweep",
            reason: "needs at least one matrix and one family".into(),
        });
    }
    let combos: Vec<(usize, Family)> = (0..inputs.len())
        .flat_map(|i| families.iter().map(move |&f| (i, f)))
        .collect();
    let rows: Vec<Result<SweepRow>> = combos
        .par_iter()
        .map(|&(i, family)| {
            let inp = &inputs[i];
            let opts = FitOptions {
                family,
                ..fit.clone()
            };
            let control = inp.control.map(|matrix| Control {
                name: control_name,
                matrix,
            });
            let r = cross_validate(&inp.matrix, labels, groups, control.as_ref(), &opts, cv)
                .map_err(|e| match e {
                    // Too little data (a fold's training rows with one class or too few groups
                    // for the inner CV) is a property of the data set, not of this combination:
                    // passed on as is, so callers can tell it from a failure.
                    e @ (ProbeError::OneClass { .. } | ProbeError::TooFewGroups { .. }) => e,
                    e => ProbeError::Subset {
                        name: format!(
                            "{} layer {} {} {}",
                            inp.site,
                            inp.layer,
                            inp.position,
                            family.name()
                        ),
                        reason: e.to_string(),
                    },
                })?;
            let mut l2s: Vec<f64> = r.folds.iter().filter_map(|f| f.l2).collect();
            l2s.sort_by(|a, b| a.total_cmp(b));
            let p = r.pooled;
            Ok(SweepRow {
                site: inp.site.clone(),
                layer: inp.layer,
                position: inp.position.clone(),
                family,
                auroc: p.auroc,
                auroc_lo: p.auroc_ci.lo,
                auroc_hi: p.auroc_ci.hi,
                accuracy: p.accuracy,
                balanced_accuracy: p.balanced_accuracy,
                recall_at_fpr: p.recall_at_fpr,
                fpr: p.fpr,
                threshold_source: p.threshold_source,
                l2: l2s.get(l2s.len() / 2).copied(),
                n_rows: p.n_rows,
                n_groups: p.n_groups,
            })
        })
        .collect();
    let rows: Vec<SweepRow> = rows.into_iter().collect::<Result<_>>()?;
    let key = |r: &SweepRow| (r.auroc, if r.auroc_lo.is_nan() { 0.0 } else { r.auroc_lo });
    let mut best = 0;
    for (i, r) in rows.iter().enumerate().skip(1) {
        let (a, b) = (key(r), key(&rows[best]));
        if a.0 > b.0 + 1e-12 || ((a.0 - b.0).abs() <= 1e-12 && a.1 > b.1 + 1e-12) {
            best = i;
        }
    }
    Ok(SweepResult { rows, best })
}

/// Header of `metrics.csv`.
pub const CSV_HEADER: &str = "site,layer,position,family,auroc,auroc_lo,auroc_hi,accuracy,\
balanced_accuracy,recall_at_fpr,fpr,threshold_source,l2,n_rows,n_groups,best";

/// Writes `metrics.csv` (one row per combination, `best` = 1 on the best one).
pub fn write_metrics_csv(path: impl AsRef<Path>, result: &SweepResult) -> Result<()> {
    let path = path.as_ref();
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for (i, r) in result.rows.iter().enumerate() {
        out.push_str(&format!(
            "{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{},{},{},{}\n",
            csv_field(&r.site),
            r.layer,
            csv_field(&r.position),
            r.family.name(),
            r.auroc,
            r.auroc_lo,
            r.auroc_hi,
            r.accuracy,
            r.balanced_accuracy,
            r.recall_at_fpr,
            r.fpr,
            csv_field(&r.threshold_source),
            r.l2.map_or(String::new(), |v| format!("{v:e}")),
            r.n_rows,
            r.n_groups,
            (i == result.best) as u8
        ));
    }
    let mut f = std::fs::File::create(path).map_err(|e| ProbeError::io(path, e))?;
    f.write_all(out.as_bytes())
        .map_err(|e| ProbeError::io(path, e))
}

/// Quotes a CSV field when it holds a comma, quote or newline.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Reads a `metrics.csv` written by [`write_metrics_csv`] back into rows (for `compare`).
pub fn read_metrics_csv(path: impl AsRef<Path>) -> Result<Vec<SweepRow>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| ProbeError::io(path, e))?;
    let bad = |line: usize, why: String| ProbeError::InvalidOption {
        name: "metrics.csv",
        reason: format!("{}: line {line}: {why}", path.display()),
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim() == CSV_HEADER => {}
        other => return Err(bad(1, format!("unexpected header {other:?}"))),
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f = split_csv(line);
        if f.len() != 16 {
            return Err(bad(i + 2, format!("{} fields, expected 16", f.len())));
        }
        let num = |j: usize| -> Result<f64> {
            f[j].parse::<f64>()
                .map_err(|e| bad(i + 2, format!("field {j} {:?}: {e}", f[j])))
        };
        let int = |j: usize| -> Result<usize> {
            f[j].parse::<usize>()
                .map_err(|e| bad(i + 2, format!("field {j} {:?}: {e}", f[j])))
        };
        rows.push(SweepRow {
            site: f[0].clone(),
            layer: int(1)?,
            position: f[2].clone(),
            family: Family::parse(&f[3])?,
            auroc: num(4)?,
            auroc_lo: num(5)?,
            auroc_hi: num(6)?,
            accuracy: num(7)?,
            balanced_accuracy: num(8)?,
            recall_at_fpr: num(9)?,
            fpr: num(10)?,
            threshold_source: f[11].clone(),
            l2: if f[12].is_empty() {
                None
            } else {
                Some(num(12)?)
            },
            n_rows: int(13)?,
            n_groups: int(14)?,
        });
    }
    Ok(rows)
}

/// Splits one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}
