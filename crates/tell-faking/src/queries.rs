//! Query sets read from files: AdvBench in pyrit's YAML (`seeds[].value`), and any CSV, JSONL or
//! JSON array of the user's with a named text column.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a query file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryFormat {
    /// pyrit's seed-dataset YAML: `seeds: [{value: ...}]` (older pyrit: `prompts:`).
    PyritYaml,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
}

impl QueryFormat {
    /// Guesses the format from the file extension (`.prompt`/`.yaml`/`.yml` are pyrit YAML).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "prompt" | "yaml" | "yml" => Some(Self::PyritYaml),
            "csv" => Some(Self::Csv),
            "jsonl" => Some(Self::Jsonl),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Where to read one query set and which rows to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    /// The file, relative to the suite file's folder.
    pub path: PathBuf,
    /// Layout; guessed from the extension when absent.
    #[serde(default)]
    pub format: Option<QueryFormat>,
    /// The text column (CSV/JSON/JSONL); pyrit YAML always uses `value`.
    #[serde(default)]
    pub column: Option<String>,
    /// A column whose values become query ids; `{set}-{index}` when absent.
    #[serde(default)]
    pub id_column: Option<String>,
    /// Keep only rows whose named columns equal these values (compared as text).
    #[serde(default, rename = "where")]
    pub filter: IndexMap<String, String>,
    /// Keep only the first `limit` rows (after filtering).
    #[serde(default)]
    pub limit: Option<usize>,
    /// What the set is for, e.g. `harmful` or `benign`; copied into every prompt line.
    #[serde(default)]
    pub kind: Option<String>,
}

/// One query: its id and the request text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Stable id, unique within the suite.
    pub id: String,
    /// The request, as the user would type it.
    pub text: String,
}

/// Reads the query set `name` described by `spec`, resolving its path against `base`.
pub fn load_queries(name: &str, spec: &QuerySpec, base: &Path) -> Result<Vec<Query>> {
    let path = base.join(&spec.path);
    let format = match spec.format {
        Some(f) => f,
        None => QueryFormat::from_path(&path).ok_or_else(|| {
            Error::parse(
                &path,
                0,
                "cannot tell the query format from the extension; set format = \
                 \"pyrit-yaml\" | \"csv\" | \"jsonl\" | \"json\"",
            )
        })?,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let rows = match format {
        QueryFormat::PyritYaml => pyrit_rows(&path, &text)?,
        QueryFormat::Csv => csv_rows(&path, &text)?,
        QueryFormat::Jsonl => jsonl_rows(&path, &text)?,
        QueryFormat::Json => json_rows(&path, &text)?,
    };
    let column = match (format, &spec.column) {
        (_, Some(c)) => c.clone(),
        (QueryFormat::PyritYaml, None) => "value".to_owned(),
        (_, None) => {
            return Err(Error::parse(
                &path,
                0,
                format!("query set `{name}`: name the text column with column = \"...\""),
            ))
        }
    };
    let mut wanted = vec![column.as_str()];
    wanted.extend(spec.id_column.as_deref());
    wanted.extend(spec.filter.keys().map(String::as_str));
    for col in wanted {
        check_column(&path, &rows, col)?;
    }
    let mut out = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if !spec.filter.iter().all(|(k, v)| row.get(k) == Some(v)) {
            continue;
        }
        if spec.limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let text = row.get(&column).cloned().unwrap_or_default();
        if text.trim().is_empty() {
            continue;
        }
        let id = match &spec.id_column {
            Some(c) => row.get(c).cloned().unwrap_or_default(),
            None => format!("{name}-{index:03}"),
        };
        out.push(Query { id, text });
    }
    Ok(out)
}

type Row = IndexMap<String, String>;

/// A missing column is named with the columns that do exist (taken from the first row).
fn check_column(path: &Path, rows: &[Row], column: &str) -> Result<()> {
    if let Some(row) = rows.iter().find(|r| !r.contains_key(column)) {
        return Err(Error::MissingColumn {
            path: path.to_owned(),
            column: column.to_owned(),
            available: row.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(())
}

/// Text of a scalar JSON/YAML value; nested values are kept as their JSON text.
fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn object_row(path: &Path, line: usize, v: serde_json::Value) -> Result<Row> {
    match v {
        serde_json::Value::Object(m) => {
            Ok(m.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect())
        }
        _ => Err(Error::parse(path, line, "expected a JSON object")),
    }
}

fn pyrit_rows(path: &Path, text: &str) -> Result<Vec<Row>> {
    let doc: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| Error::parse(path, yaml_line(&e), e))?;
    let seeds = doc
        .get("seeds")
        .or_else(|| doc.get("prompts"))
        .and_then(|s| s.as_array())
        .ok_or_else(|| Error::parse(path, 0, "no `seeds:` (or `prompts:`) list"))?;
    seeds
        .iter()
        .map(|s| object_row(path, 0, s.clone()))
        .collect()
}

fn yaml_line(e: &serde_yaml::Error) -> usize {
    e.location().map(|l| l.line()).unwrap_or(0)
}

fn csv_rows(path: &Path, text: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::parse(path, 1, e))?
        .clone();
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| Error::parse(path, i + 2, e))?;
        rows.push(
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect(),
        );
    }
    if rows.is_empty() {
        // A header-only file has no rows to show its columns; keep one empty row for the check
        // and drop it in `load_queries` (an empty text is never a query).
        rows.push(
            headers
                .iter()
                .map(|h| (h.to_owned(), String::new()))
                .collect(),
        );
    }
    Ok(rows)
}

fn jsonl_rows(path: &Path, text: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::parse(path, i + 1, e))?;
        rows.push(object_row(path, i + 1, v)?);
    }
    Ok(rows)
}

fn json_rows(path: &Path, text: &str) -> Result<Vec<Row>> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::parse(path, e.line(), e))?;
    match v {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| object_row(path, 0, item))
            .collect(),
        _ => Err(Error::parse(path, 1, "expected a JSON array of objects")),
    }
}
