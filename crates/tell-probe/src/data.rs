//! Plain in-memory inputs: a row-major f32 matrix view, labels and group ids, with validation.

use crate::error::{ProbeError, Result};
use std::collections::HashMap;

/// A borrowed row-major matrix: `n_rows` records x `n_cols` features.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    data: &'a [f32],
    n_rows: usize,
    n_cols: usize,
}

impl<'a> Matrix<'a> {
    /// Wraps `data` (length `n_rows * n_cols`); checks the shape, not the values.
    pub fn new(data: &'a [f32], n_rows: usize, n_cols: usize) -> Result<Self> {
        let expected = n_rows.checked_mul(n_cols).ok_or(ProbeError::Shape {
            n_rows,
            n_cols,
            expected: usize::MAX,
            got: data.len(),
        })?;
        if data.len() != expected {
            return Err(ProbeError::Shape {
                n_rows,
                n_cols,
                expected,
                got: data.len(),
            });
        }
        if n_rows == 0 || n_cols == 0 {
            return Err(ProbeError::Empty { n_rows, n_cols });
        }
        Ok(Matrix {
            data,
            n_rows,
            n_cols,
        })
    }

    /// Number of records.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of features.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The flat row-major buffer.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// One record's features.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.n_cols..(i + 1) * self.n_cols]
    }

    /// Fails with the first NaN or infinity, naming its row and feature.
    pub fn check_finite(&self) -> Result<()> {
        // Fast path: `v * 0.0` is 0 for finite v and NaN for NaN or +-inf, so a row's sum of them
        // is NaN exactly when the row holds a bad value; only then do we look for its position.
        for (i, row) in self.data.chunks_exact(self.n_cols).enumerate() {
            let s: f32 = row.iter().fold(0.0f32, |a, &v| a + v * 0.0);
            if !s.is_finite() {
                if let Some((j, &v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(ProbeError::NonFinite {
                        row: i,
                        col: j,
                        value: v,
                    });
                }
            }
        }
        Ok(())
    }

    /// Copies the given rows into a new owned row-major buffer.
    pub fn gather(&self, rows: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.n_cols);
        for &r in rows {
            out.extend_from_slice(self.row(r));
        }
        out
    }
}

/// Turns per-row optional labels into plain labels, failing if any row has none.
pub fn labels_from_options(labels: &[Option<bool>]) -> Result<Vec<bool>> {
    let missing: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_none())
        .map(|(i, _)| i)
        .collect();
    if let Some(&first_row) = missing.first() {
        return Err(ProbeError::MissingLabels {
            count: missing.len(),
            first_row,
        });
    }
    Ok(labels.iter().map(|l| l.unwrap_or(false)).collect())
}

/// Maps group names (e.g. `query_id` values) to dense ids `0..n_groups`, in order of appearance.
pub fn group_ids<S: AsRef<str>>(names: &[S]) -> Vec<u32> {
    let mut map: HashMap<&str, u32> = HashMap::new();
    names
        .iter()
        .map(|n| {
            let next = map.len() as u32;
            *map.entry(n.as_ref()).or_insert(next)
        })
        .collect()
}

/// Checks labels against the matrix: same count and both classes present.
pub fn check_labels(labels: &[bool], n_rows: usize, context: &str) -> Result<(usize, usize)> {
    if labels.len() != n_rows {
        return Err(ProbeError::LabelCount {
            labels: labels.len(),
            rows: n_rows,
        });
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(ProbeError::OneClass {
            n_pos,
            n_neg,
            context: context.to_string(),
        });
    }
    Ok((n_pos, n_neg))
}

/// Checks group ids against the matrix row count.
pub fn check_groups(groups: &[u32], n_rows: usize) -> Result<()> {
    if groups.len() != n_rows {
        return Err(ProbeError::GroupCount {
            groups: groups.len(),
            rows: n_rows,
        });
    }
    Ok(())
}

/// Renumbers group ids densely (`0..n_groups`, in order of first appearance), so sparse or huge
/// ids cost no memory; returns the new ids and the group count.
pub fn dense_groups(groups: &[u32]) -> (Vec<u32>, usize) {
    let mut map: HashMap<u32, u32> = HashMap::new();
    let ids = groups
        .iter()
        .map(|&g| {
            let next = map.len() as u32;
            *map.entry(g).or_insert(next)
        })
        .collect();
    (ids, map.len())
}

/// Fails if any row index is outside `0..n_rows`.
pub fn check_rows(rows: &[usize], n_rows: usize) -> Result<()> {
    match rows.iter().find(|&&r| r >= n_rows) {
        Some(&r) => Err(ProbeError::InvalidOption {
            name: "rows",
            reason: format!("row index {r} out of range for {n_rows} rows"),
        }),
        None => Ok(()),
    }
}
