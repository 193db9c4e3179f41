//! `records.csv`: one row per committed record, fixed columns then the union of extra fields.

use crate::error::{io_at, Error, Result};
use crate::fsio;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

/// The fixed leading columns of `records.csv`, in order.
pub const FIXED_COLUMNS: [&str; 7] = [
    "record",
    "id",
    "query_id",
    "condition",
    "tier",
    "n_tokens",
    "n_response_tokens",
];

/// Metadata of one record, as the caller hands it to the writer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// Prompt-line id.
    pub id: String,
    /// Query id (records of one query share it; probes split on it).
    pub query_id: String,
    /// Condition (system-prompt variant).
    pub condition: String,
    /// Tier (monitoring cue).
    pub tier: String,
    /// Tokens in the sequence the activations come from (prompt + response).
    pub n_tokens: usize,
    /// Trailing response tokens among `n_tokens` (0 without a response).
    pub n_response_tokens: usize,
    /// Every other field of the prompt line, as text, in the line's order. Empty values read
    /// back as absent, since CSV cannot tell them apart.
    pub extra: Vec<(String, String)>,
}

impl RecordMeta {
    /// Tokens before the response (`n_tokens - n_response_tokens`), saturating at 0.
    pub fn prompt_tokens(&self) -> usize {
        self.n_tokens.saturating_sub(self.n_response_tokens)
    }

    /// The value of extra field `name`, if present.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A record read back from `records.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRow {
    /// Global record index (row order in every matrix).
    pub index: usize,
    /// The record's metadata.
    pub meta: RecordMeta,
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::Records {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn header(extra: &[String]) -> Vec<&str> {
    FIXED_COLUMNS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect()
}

fn write_row<W: Write>(
    w: &mut csv::Writer<W>,
    index: usize,
    meta: &RecordMeta,
    extra_columns: &[String],
) -> csv::Result<()> {
    let (index, n, nr) = (
        index.to_string(),
        meta.n_tokens.to_string(),
        meta.n_response_tokens.to_string(),
    );
    let mut row: Vec<&str> = vec![
        &index,
        &meta.id,
        &meta.query_id,
        &meta.condition,
        &meta.tier,
        &n,
        &nr,
    ];
    row.extend(extra_columns.iter().map(|c| meta.extra(c).unwrap_or("")));
    w.write_record(&row)
}

/// Replaces `dir/records.csv` atomically with: its first `keep` rows (widened from `old_extra` to
/// `new_extra` columns) followed by `new_rows`. Memory stays O(one row): old rows are streamed, and
/// when the columns did not change the old file is copied byte for byte.
pub(crate) fn rewrite(
    dir: &Path,
    keep: usize,
    old_extra: &[String],
    new_extra: &[String],
    new_rows: &[(usize, &RecordMeta)],
) -> Result<()> {
    let path = dir.join(crate::manifest::RECORDS_FILE);
    let tmp = fsio::tmp_path(&path);
    let fast = keep > 0 && old_extra == new_extra && path.exists();
    let file = if fast {
        fs::copy(&path, &tmp).map_err(io_at(&tmp))?;
        OpenOptions::new()
            .append(true)
            .open(&tmp)
            .map_err(io_at(&tmp))?
    } else {
        File::create(&tmp).map_err(io_at(&tmp))?
    };
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(BufWriter::new(file));
    if !fast {
        w.write_record(header(new_extra))
            .map_err(|e| csv_err(&tmp, e))?;
        if keep > 0 {
            // Widen the old rows: extra columns only ever get appended, so pad at the end.
            let pad = new_extra.len().saturating_sub(old_extra.len());
            let mut r = open_reader(&path)?;
            let mut copied = 0;
            for rec in r.records().take(keep) {
                let rec = rec.map_err(|e| csv_err(&path, e))?;
                let mut fields: Vec<&str> = rec.iter().collect();
                fields.extend(std::iter::repeat_n("", pad));
                w.write_record(&fields).map_err(|e| csv_err(&tmp, e))?;
                copied += 1;
            }
            if copied < keep {
                return Err(Error::Records {
                    path,
                    message: format!("holds {copied} rows, the manifest commits {keep}"),
                });
            }
        }
    }
    for (index, meta) in new_rows {
        write_row(&mut w, *index, meta, new_extra).map_err(|e| csv_err(&tmp, e))?;
    }
    close(w, &tmp)?;
    fsio::commit(&tmp, &path)
}

fn open_reader(path: &Path) -> Result<csv::Reader<BufReader<File>>> {
    let f = File::open(path).map_err(io_at(path))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::new(f)))
}

/// Reads every row of `records.csv`, checking that the header starts with the fixed columns and
/// `extra_columns` and that the `record` column counts up from 0.
pub fn read_records(path: &Path, extra_columns: &[String]) -> Result<Vec<RecordRow>> {
    let mut r = open_reader(path)?;
    let bad = |message: String| Error::Records {
        path: path.to_path_buf(),
        message,
    };
    let head = r.headers().map_err(|e| csv_err(path, e))?.clone();
    let want = header(extra_columns);
    // Trailing columns beyond the committed ones come from rows a crash left after the last
    // committed shard (records.csv is replaced before the manifest); they are not ours to read.
    if head.len() < want.len() || head.iter().take(want.len()).ne(want.iter().copied()) {
        return Err(bad(format!(
            "header is {:?}, expected {:?}",
            head.iter().collect::<Vec<_>>(),
            want
        )));
    }
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        let line = i + 2;
        let field = |j: usize| rec.get(j).unwrap_or("");
        let num = |j: usize| -> Result<usize> {
            field(j).parse::<usize>().map_err(|_| {
                bad(format!(
                    "line {line}: column {} is {:?}, not a count",
                    FIXED_COLUMNS[j],
                    field(j)
                ))
            })
        };
        let index = num(0)?;
        if index != i {
            return Err(bad(format!("line {line}: record is {index}, expected {i}")));
        }
        let extra = extra_columns
            .iter()
            .enumerate()
            .filter(|(j, _)| !field(FIXED_COLUMNS.len() + j).is_empty())
            .map(|(j, c)| (c.clone(), field(FIXED_COLUMNS.len() + j).to_string()))
            .collect();
        out.push(RecordRow {
            index,
            meta: RecordMeta {
                id: field(1).to_string(),
                query_id: field(2).to_string(),
                condition: field(3).to_string(),
                tier: field(4).to_string(),
                n_tokens: num(5)?,
                n_response_tokens: num(6)?,
                extra,
            },
        });
    }
    Ok(out)
}

/// Rewrites `records.csv` keeping its header's first `FIXED + extra` columns and its first `keep`
/// rows (used on resume to drop rows a crash left behind, which may also have widened the header).
pub(crate) fn rewrite_prefix(dir: &Path, keep: usize, extra: &[String]) -> Result<()> {
    let path = dir.join(crate::manifest::RECORDS_FILE);
    let tmp = fsio::tmp_path(&path);
    let width = FIXED_COLUMNS.len() + extra.len();
    let file = File::create(&tmp).map_err(io_at(&tmp))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(BufWriter::new(file));
    w.write_record(header(extra))
        .map_err(|e| csv_err(&tmp, e))?;
    let mut copied = 0;
    if keep > 0 {
        let mut r = open_reader(&path)?;
        let head = r.headers().map_err(|e| csv_err(&path, e))?.clone();
        if head.iter().take(width).ne(header(extra)) {
            return Err(Error::Records {
                path,
                message: format!(
                    "header {:?} does not start with the committed columns {:?}",
                    head.iter().collect::<Vec<_>>(),
                    header(extra)
                ),
            });
        }
        for rec in r.records().take(keep) {
            let rec = rec.map_err(|e| csv_err(&path, e))?;
            w.write_record(rec.iter().take(width))
                .map_err(|e| csv_err(&tmp, e))?;
            copied += 1;
        }
    }
    if copied < keep {
        return Err(Error::Records {
            path,
            message: format!("holds {copied} rows, the manifest commits {keep}"),
        });
    }
    close(w, &tmp)?;
    fsio::commit(&tmp, &path)
}

/// Writes `rows` as a complete `records.csv` at `path` (used by export).
pub(crate) fn write_all(path: &Path, rows: &[RecordRow], extra: &[String]) -> Result<()> {
    let file = File::create(path).map_err(io_at(path))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(BufWriter::new(file));
    w.write_record(header(extra))
        .map_err(|e| csv_err(path, e))?;
    for r in rows {
        write_row(&mut w, r.index, &r.meta, extra).map_err(|e| csv_err(path, e))?;
    }
    close(w, path)
}

/// Flushes a CSV writer down to the file and fsyncs it, reporting errors a drop would swallow.
fn close(w: csv::Writer<BufWriter<File>>, path: &Path) -> Result<()> {
    let buf = w.into_inner().map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    buf.into_inner()
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io_at(path))
}
