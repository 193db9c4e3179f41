//! Joining an activation store (`tell-store`) with a labels CSV: per-record labels, groups and
//! control rows, and the store's per-layer matrices checked for NaN/Inf. The rest of the crate
//! stays on plain arrays; this module is the one place that knows the store.

use crate::error::{ProbeError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tell_store::{Positions, RecordMeta, RecordRow, SiteLayerKey, Store};

/// The value of a `records.csv` column for one record: a fixed column or an extra field.
pub fn record_value(meta: &RecordMeta, column: &str) -> Option<String> {
    match column {
        "id" => Some(meta.id.clone()),
        "query_id" => Some(meta.query_id.clone()),
        "condition" => Some(meta.condition.clone()),
        "tier" => Some(meta.tier.clone()),
        "n_tokens" => Some(meta.n_tokens.to_string()),
        "n_response_tokens" => Some(meta.n_response_tokens.to_string()),
        other => meta.extra(other).map(str::to_string),
    }
}

/// Values of `column` for the given records; a record without it is an error naming it.
pub fn column_values(store: &Path, records: &[&RecordRow], column: &str) -> Result<Vec<String>> {
    records
        .iter()
        .map(|r| {
            record_value(&r.meta, column).ok_or_else(|| ProbeError::StoreMismatch {
                store: store.display().to_string(),
                reason: format!(
                    "record {} (id {:?}) has no column {column:?} in records.csv",
                    r.index, r.meta.id
                ),
            })
        })
        .collect()
}

/// Labels read from a CSV, keyed by the values of the join columns.
#[derive(Clone, Debug)]
pub struct LabelTable {
    /// The file they came from.
    pub path: PathBuf,
    /// Join columns (present in the CSV and in the store's records).
    pub join_on: Vec<String>,
    /// Label column.
    pub label: String,
    /// Value that means positive (`None`: 1/0, true/false, yes/no).
    pub positive: Option<String>,
    map: HashMap<Vec<String>, bool>,
}

impl LabelTable {
    /// What a positive label means, for `probe.json`.
    pub fn definition(&self) -> String {
        let pos = self.positive.as_deref().unwrap_or("1");
        format!(
            "{}=={pos} (labels {}, joined on {})",
            self.label,
            self.path.display(),
            self.join_on.join("+")
        )
    }

    /// Number of labelled keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no row of the file has a label.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The label of one record (`None` when the file has none for its key).
    pub fn get(&self, meta: &RecordMeta) -> Option<bool> {
        let key: Option<Vec<String>> = self.join_on.iter().map(|c| record_value(meta, c)).collect();
        key.and_then(|k| self.map.get(&k).copied())
    }
}

/// Parses one label cell: equal to `positive` when given, else the usual boolean spellings.
fn parse_label(v: &str, positive: Option<&str>) -> std::result::Result<bool, String> {
    if let Some(p) = positive {
        return Ok(v == p);
    }
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "positive" => Ok(true),
        "0" | "false" | "no" | "negative" => Ok(false),
        _ => Err(format!(
            "label value {v:?} is not 1/0, true/false or yes/no: name the positive value with \
             --positive (e.g. --positive {v})"
        )),
    }
}

/// Reads a labels CSV: `join_on` columns form the key, `label` holds the label. Empty label
/// cells are skipped (no label); one key with two different labels is an error.
pub fn read_labels(
    path: &Path,
    join_on: &[String],
    label: &str,
    positive: Option<&str>,
) -> Result<LabelTable> {
    let err = |reason: String| ProbeError::Labels {
        path: path.display().to_string(),
        reason,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| err(e.to_string()))?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| err(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let find = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            err(format!(
                "no column {name:?} (columns: {})",
                header.join(", ")
            ))
        })
    };
    let key_cols: Vec<usize> = join_on.iter().map(|c| find(c)).collect::<Result<_>>()?;
    let label_col = find(label)?;
    let mut map = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| err(format!("line {line}: {e}")))?;
        let cell = |j: usize| rec.get(j).unwrap_or("").trim().to_string();
        let v = cell(label_col);
        if v.is_empty() {
            continue;
        }
        let y = parse_label(&v, positive).map_err(|e| err(format!("line {line}: {e}")))?;
        let key: Vec<String> = key_cols.iter().map(|&j| cell(j)).collect();
        if let Some(&old) = map.get(&key) {
            if old != y {
                return Err(err(format!(
                    "line {line}: key {} has two different labels",
                    key.join("+")
                )));
            }
        }
        map.insert(key, y);
    }
    Ok(LabelTable {
        path: path.to_path_buf(),
        join_on: join_on.to_vec(),
        label: label.to_string(),
        positive: positive.map(str::to_string),
        map,
    })
}

/// Labels of the given records; a record the file does not label is an error naming how many
/// and the first one.
pub fn join_labels(table: &LabelTable, records: &[&RecordRow]) -> Result<Vec<bool>> {
    let got: Vec<Option<bool>> = records.iter().map(|r| table.get(&r.meta)).collect();
    let missing: Vec<usize> = (0..got.len()).filter(|&i| got[i].is_none()).collect();
    if let Some(&first) = missing.first() {
        return Err(ProbeError::UnlabelledRecords {
            path: table.path.display().to_string(),
            count: missing.len(),
            total: records.len(),
            first_index: records[first].index,
            first_id: records[first].meta.id.clone(),
            join_on: table.join_on.join("+"),
        });
    }
    Ok(got.into_iter().map(|l| l.unwrap_or(false)).collect())
}

/// Opens a store and checks it holds one row per record (a pooled position, not `all`).
pub fn open_pooled(dir: &Path) -> Result<Store> {
    let store = Store::open(dir)?;
    if store.manifest().positions == Positions::All {
        return Err(ProbeError::StoreMismatch {
            store: dir.display().to_string(),
            reason: "it holds every token (positions all); probes need one row per record: \
                     capture a pooled position (last, mean, response-mean, response-first)"
                .into(),
        });
    }
    if store.is_empty() {
        return Err(ProbeError::StoreMismatch {
            store: dir.display().to_string(),
            reason: "it holds no records".into(),
        });
    }
    Ok(store)
}

/// The per-layer matrices of a store, optionally restricted to some sites and layers. Model-level
/// sites (`ln_final`, `logits`) have no layer and are left out of layer sweeps.
pub fn layer_keys(
    store: &Store,
    sites: Option<&[String]>,
    layers: Option<&[u32]>,
) -> Result<Vec<SiteLayerKey>> {
    let all = store.keys();
    let keys: Vec<SiteLayerKey> = all
        .iter()
        .filter(|k| k.layer.is_some())
        .filter(|k| sites.is_none_or(|s| s.contains(&k.site)))
        .filter(|k| layers.is_none_or(|l| k.layer.is_some_and(|x| l.contains(&x))))
        .cloned()
        .collect();
    if keys.is_empty() {
        let names: Vec<String> = all.iter().map(|k| k.tensor_name()).collect();
        return Err(ProbeError::StoreMismatch {
            store: store.dir().display().to_string(),
            reason: format!(
                "no per-layer matrix matches the requested sites/layers (it has: {})",
                names.join(", ")
            ),
        });
    }
    Ok(keys)
}

/// Reads one matrix whole and fails on the first NaN/Inf, naming the record, its id and the
/// feature (so the user can find the bad capture).
pub fn load_finite(
    store: &Store,
    key: &SiteLayerKey,
    records: &[RecordRow],
) -> Result<tell_store::Matrix> {
    let m = store.matrix(key)?;
    if m.rows != records.len() {
        return Err(ProbeError::StoreMismatch {
            store: store.dir().display().to_string(),
            reason: format!("{key} has {} rows for {} records", m.rows, records.len()),
        });
    }
    if m.cols > 0 {
        for (i, row) in m.data.chunks_exact(m.cols).enumerate() {
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(ProbeError::StoreMismatch {
                    store: store.dir().display().to_string(),
                    reason: format!(
                        "non-finite activation ({}) in {key}, record {i} (id {:?}), feature {j}",
                        row[j], records[i].meta.id
                    ),
                });
            }
        }
    }
    Ok(m)
}

/// Copies the given rows of a store matrix into a new row-major buffer.
pub fn gather(m: &tell_store::Matrix, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * m.cols);
    for &r in rows {
        out.extend_from_slice(m.row(r));
    }
    out
}

/// Where the recall@FPR threshold comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ControlSource {
    /// No control set: held-out negatives of the training rows.
    None,
    /// Every record of another store with the same matrices (e.g. benign prompts).
    Store(PathBuf),
    /// Records of the training store whose `column` equals `value`; they are left out of
    /// training and evaluation and need no label.
    Where {
        /// records.csv column.
        column: String,
        /// Value that selects control records.
        value: String,
    },
}

impl ControlSource {
    /// Parses `COLUMN=VALUE` for `--control-where`.
    pub fn parse_where(s: &str) -> Result<Self> {
        match s.split_once('=') {
            Some((c, v)) if !c.trim().is_empty() => Ok(ControlSource::Where {
                column: c.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => Err(ProbeError::InvalidOption {
                name: "control-where",
                reason: format!("expected COLUMN=VALUE, got {s:?}"),
            }),
        }
    }

    /// Name recorded as the threshold source (`control:<name>`).
    pub fn name(&self) -> String {
        match self {
            ControlSource::None => "none".into(),
            ControlSource::Store(p) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
            ControlSource::Where { column, value } => format!("{column}={value}"),
        }
    }
}
