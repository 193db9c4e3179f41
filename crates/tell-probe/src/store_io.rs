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
/// cells are skipped (no label); a key on two rows is an error naming both lines, since a join
/// must find one row per key (two rows with one label would hide a copy-paste error, two with
/// different labels cannot both hold).
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
    // The line of each key's row, to name both rows of a repeated key.
    let mut lines: HashMap<Vec<String>, usize> = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| err(format!("line {}: {e}", i + 2)))?;
        // The record's own line (a quoted cell may span lines).
        let line = rec.position().map_or(i + 2, |p| p.line() as usize);
        let cell = |j: usize| rec.get(j).unwrap_or("").trim().to_string();
        let key: Vec<String> = key_cols.iter().map(|&j| cell(j)).collect();
        if let Some(&first) = lines.get(&key) {
            return Err(err(format!(
                "lines {first} and {line} both have {}: a label row must match one key, so \
                 each key needs exactly one row",
                describe_key(join_on, &key)
            )));
        }
        lines.insert(key.clone(), line);
        let v = cell(label_col);
        if v.is_empty() {
            continue;
        }
        let y = parse_label(&v, positive).map_err(|e| err(format!("line {line}: {e}")))?;
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

/// `id "a"` or `query_id "q1" + condition "base"`, for messages.
fn describe_key(columns: &[String], key: &[String]) -> String {
    columns
        .iter()
        .zip(key)
        .map(|(c, v)| format!("{c} {v:?}"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Refuses records that share an id: a record id names one prompt, and two records with one id
/// (a store written from a prompts file with a repeated id, before tell refused those) would
/// each take the label row of that id, counting it twice.
pub fn check_unique_ids(store: &Path, records: &[&RecordRow]) -> Result<()> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for r in records {
        if let Some(&f) = first.get(r.meta.id.as_str()) {
            return Err(ProbeError::StoreMismatch {
                store: store.display().to_string(),
                reason: format!(
                    "records {f} and {} both have id {:?}, so a label row would be joined to \
                     both; recapture from a prompts file whose ids are unique",
                    r.index, r.meta.id
                ),
            });
        }
        first.insert(r.meta.id.as_str(), r.index);
    }
    Ok(())
}

/// Labels of the given records of the store at `store`; a record the file does not label is an
/// error naming how many and the first one, and records that share an id are refused
/// ([`check_unique_ids`]). Many records may share a label row when the join key is not the id
/// (labels per `query_id` cover every record of the query).
pub fn join_labels(store: &Path, table: &LabelTable, records: &[&RecordRow]) -> Result<Vec<bool>> {
    check_unique_ids(store, records)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tell-probe-store-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn record(index: usize, id: &str, query_id: &str) -> RecordRow {
        RecordRow {
            index,
            meta: RecordMeta {
                id: id.into(),
                query_id: query_id.into(),
                condition: "base".into(),
                tier: "free".into(),
                n_tokens: 3,
                n_response_tokens: 0,
                extra: vec![],
            },
        }
    }

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_key_on_two_rows_is_refused_naming_both_lines() {
        // The same label twice is refused too: the join must find one row per key.
        let path = labels_file("dup.csv", "id,label\na,1\nb,0\n\"c\nd\",0\na,1\n");
        let err = read_labels(&path, &cols(&["id"]), "label", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "labels {}: lines 2 and 6 both have id \"a\": a label row must match one key, \
                 so each key needs exactly one row",
                path.display()
            )
        );
        let path = labels_file(
            "dup2.csv",
            "query_id,condition,label\nq1,base,yes\nq1,other,no\nq1,base,no\n",
        );
        let err = read_labels(
            &path,
            &cols(&["query_id", "condition"]),
            "label",
            Some("yes"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "labels {}: lines 2 and 4 both have query_id \"q1\" + condition \"base\": a \
                 label row must match one key, so each key needs exactly one row",
                path.display()
            )
        );
    }

    #[test]
    fn records_that_share_an_id_are_refused_at_the_join() {
        let path = labels_file("ok.csv", "id,label\na,1\nb,0\n");
        let table = read_labels(&path, &cols(&["id"]), "label", None).unwrap();
        let rows = [
            record(0, "a", "q0"),
            record(1, "b", "q1"),
            record(2, "a", "q2"),
        ];
        let refs: Vec<&RecordRow> = rows.iter().collect();
        let err = join_labels(Path::new("run/acts"), &table, &refs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "store run/acts: records 0 and 2 both have id \"a\", so a label row would be joined \
             to both; recapture from a prompts file whose ids are unique"
        );
        assert_eq!(
            join_labels(Path::new("run/acts"), &table, &refs[..2]).unwrap(),
            vec![true, false]
        );
    }

    #[test]
    fn one_label_row_may_cover_the_records_of_its_key() {
        // Labels per query: one row labels every record (tier, sample) of the query.
        let path = labels_file("per-query.csv", "query_id,label\nq0,1\nq1,0\n");
        let table = read_labels(&path, &cols(&["query_id"]), "label", None).unwrap();
        let rows = [
            record(0, "a", "q0"),
            record(1, "b", "q0"),
            record(2, "c", "q1"),
        ];
        let refs: Vec<&RecordRow> = rows.iter().collect();
        assert_eq!(
            join_labels(Path::new("acts"), &table, &refs).unwrap(),
            vec![true, true, false]
        );
    }
}
