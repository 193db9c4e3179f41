//! `export_npy`: one `.npy` (`<f4`) per site/layer, `offsets.npy` for `all`, and `records.csv`.

use crate::error::{io_at, Error, Result};
use crate::manifest::RECORDS_FILE;
use crate::npy::NpyWriter;
use crate::reader::Store;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What [`export_npy`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// Records exported.
    pub records: usize,
}

/// Exports the store in `dir` to `out` (created if missing): `{tensor}.npy` of shape
/// `[records, d]` (pooled) or `[tokens, d]` (`all`, plus `offsets.npy`, int64 `[records + 1]`),
/// always little-endian f32 whatever the store dtype, and a copy of `records.csv`. Streams one
/// shard at a time. An empty store is an error.
pub fn export_npy(dir: &Path, out: &Path) -> Result<ExportReport> {
    let store = Store::open(dir)?;
    if store.is_empty() {
        return Err(Error::EmptyStore {
            path: dir.to_path_buf(),
        });
    }
    // Check records.csv before writing anything, so a broken store exports nothing.
    let records = store.records()?;
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let m = store.manifest();
    let rows: usize = m.shards.iter().map(|s| s.rows).sum();
    let mut files = Vec::new();
    for key in store.keys() {
        let d = store.width(&key)?;
        let path = out.join(format!("{}.npy", key.tensor_name()));
        let mut w = NpyWriter::create(&path, "<f4", &[rows, d])?;
        for c in store.chunks(&key)? {
            w.write_f32(&c?.matrix.data)?;
        }
        w.finish()?;
        files.push(path);
    }
    if !m.positions.is_pooled() {
        let offsets = store.offsets()?;
        let path = out.join("offsets.npy");
        let mut w = NpyWriter::create(&path, "<i8", &[offsets.len()])?;
        let vals: Vec<i64> = offsets.iter().map(|&o| o as i64).collect();
        w.write_i64(&vals)?;
        w.finish()?;
        files.push(path);
    }
    // Copy only the committed rows (a crash may have left more in the source).
    let path = out.join(RECORDS_FILE);
    crate::records::write_all(&path, &records, &m.extra_columns)?;
    files.push(path);
    Ok(ExportReport {
        files,
        records: store.len(),
    })
}
