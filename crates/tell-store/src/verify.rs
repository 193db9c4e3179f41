//! `verify`: recompute shard checksums and cross-check manifest, shards and `records.csv`.

use crate::error::Result;
use crate::fsio;
use crate::manifest::{Manifest, OFFSETS_TENSOR, RECORDS_FILE};
use crate::reader::Store;
use crate::records::read_records;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a store, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// Result of [`verify`]: counts checked and every problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Store directory.
    pub dir: PathBuf,
    /// Records the manifest commits.
    pub records: usize,
    /// Shards checked.
    pub shards: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Problems, empty when the store is sound.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the store in `dir`: every shard's size and sha256, tensor names, dtypes and shapes,
/// offsets, token counts, and `records.csv` against the manifest; stray temp or uncommitted
/// files are reported too. Fails outright only when the manifest itself cannot be read.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let store = Store::open(dir)?;
    let m = store.manifest();
    let mut problems = Vec::new();
    let mut report = |file: &Path, message: String| {
        problems.push(Problem {
            file: file.to_path_buf(),
            message,
        })
    };
    let mut bytes = 0u64;
    // Per shard: the tokens its offsets say each record has (all positions), for the CSV check.
    let mut shard_tokens: Vec<Option<Vec<u64>>> = Vec::new();
    for (i, s) in m.shards.iter().enumerate() {
        let path = dir.join(&s.file);
        shard_tokens.push(None);
        match fsio::sha256_file(&path) {
            Err(e) => {
                report(&path, format!("cannot read: {e}"));
                continue;
            }
            Ok((sha, n)) => {
                bytes += n;
                if n != s.bytes {
                    report(&path, format!("{n} bytes, the manifest says {}", s.bytes));
                    continue;
                }
                if sha != s.sha256 {
                    report(
                        &path,
                        format!("sha256 {sha}, the manifest says {}", s.sha256),
                    );
                    continue;
                }
            }
        }
        let shard = match store.shard(i) {
            Ok(sh) => sh,
            Err(e) => {
                report(&path, e.to_string());
                continue;
            }
        };
        for t in &m.tensors {
            if let Err(e) = shard.raw(&t.name, t.d) {
                report(&path, e.to_string());
            }
        }
        match shard.tensor_names() {
            Ok(have) => {
                let mut want: BTreeSet<String> = m.tensors.iter().map(|t| t.name.clone()).collect();
                if !m.positions.is_pooled() {
                    want.insert(OFFSETS_TENSOR.to_string());
                }
                let have: BTreeSet<String> = have.into_iter().collect();
                for extra in have.difference(&want) {
                    report(&path, format!("unexpected tensor {extra}"));
                }
            }
            Err(e) => report(&path, e.to_string()),
        }
        match shard.offsets() {
            Ok(o) => {
                let per: Vec<u64> = o.windows(2).map(|w| w[1] - w[0]).collect();
                if !m.positions.is_pooled() {
                    let total: u64 = per.iter().sum();
                    if total != s.tokens {
                        report(
                            &path,
                            format!(
                                "offsets cover {total} tokens, the manifest says {}",
                                s.tokens
                            ),
                        );
                    }
                    shard_tokens[i] = Some(per);
                }
            }
            Err(e) => report(&path, e.to_string()),
        }
    }
    check_records(dir, m, &shard_tokens, &mut report);
    check_strays(dir, m, &mut report);
    Ok(VerifyReport {
        dir: dir.to_path_buf(),
        records: m.record_count,
        shards: m.shards.len(),
        bytes,
        problems,
    })
}

fn check_records(
    dir: &Path,
    m: &Manifest,
    shard_tokens: &[Option<Vec<u64>>],
    report: &mut impl FnMut(&Path, String),
) {
    let path = dir.join(RECORDS_FILE);
    let rows = match read_records(&path, &m.extra_columns) {
        Ok(r) => r,
        Err(e) => return report(&path, e.to_string()),
    };
    if rows.len() != m.record_count {
        report(
            &path,
            format!(
                "{} rows, the manifest commits {} records",
                rows.len(),
                m.record_count
            ),
        );
        if rows.len() < m.record_count {
            return;
        }
    }
    let resp: u64 = rows[..m.record_count]
        .iter()
        .map(|r| r.meta.n_response_tokens as u64)
        .sum();
    if resp != m.response_token_count {
        report(
            &path,
            format!(
                "response tokens sum to {resp}, the manifest says {}",
                m.response_token_count
            ),
        );
    }
    for (s, toks) in m.shards.iter().zip(shard_tokens) {
        let recs = &rows[s.first_record..s.first_record + s.records];
        let sum: u64 = recs.iter().map(|r| r.meta.n_tokens as u64).sum();
        if sum != s.tokens {
            report(
                &path,
                format!(
                    "records of {} have {sum} tokens, the manifest says {}",
                    s.file, s.tokens
                ),
            );
        }
        if let Some(toks) = toks {
            for (r, t) in recs.iter().zip(toks) {
                if r.meta.n_tokens as u64 != *t {
                    report(
                        &path,
                        format!(
                            "record {} has n_tokens {}, but {} stores {t} rows for it",
                            r.index, r.meta.n_tokens, s.file
                        ),
                    );
                }
            }
        }
    }
}

fn check_strays(dir: &Path, m: &Manifest, report: &mut impl FnMut(&Path, String)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| fsio::is_store_file(n))
        .collect();
    names.sort();
    for n in names {
        let uncommitted = n.starts_with("shard-") && !m.shards.iter().any(|s| s.file == n);
        if n.ends_with(fsio::TMP_SUFFIX) || uncommitted {
            report(
                &dir.join(&n),
                "left over from an interrupted write (resume removes it)".into(),
            );
        }
    }
}
