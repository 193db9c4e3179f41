//! Reading a store: records, one (site, layer) matrix shard by shard, single records; all through
//! memory maps, so only the requested tensor's pages are touched.

use crate::error::{io_at, Error, Result};
use crate::manifest::{Manifest, ShardEntry, OFFSETS_TENSOR, RECORDS_FILE};
use crate::records::{read_records, RecordRow};
use crate::spec::{ModelIdentity, Positions, SiteLayerKey, SiteSpec, StoreDtype};
use memmap2::Mmap;
use safetensors::SafeTensors;
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A dense row-major f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (d).
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i` (panics if out of range, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// An open activation store (reads the manifest only).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
}

/// Summary of a store, as `tell store info` prints it (serialisable to JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreInfo {
    /// Store directory.
    pub dir: PathBuf,
    /// On-disk format version.
    pub format_version: u32,
    /// Tool that wrote it.
    pub tool_version: String,
    /// Model identity.
    pub model: ModelIdentity,
    /// Sites with widths.
    pub sites: Vec<SiteSpec>,
    /// Layers of per-block sites.
    pub layers: Vec<u32>,
    /// Stored positions.
    pub positions: Positions,
    /// Element type.
    pub dtype: StoreDtype,
    /// Tensor names per shard.
    pub tensors: Vec<String>,
    /// Committed records.
    pub records: usize,
    /// Sum of `n_tokens`.
    pub tokens: u64,
    /// Sum of `n_response_tokens`.
    pub response_tokens: u64,
    /// Committed shards.
    pub shards: usize,
    /// Total bytes of shard files.
    pub shard_bytes: u64,
    /// Extra metadata columns.
    pub extra_columns: Vec<String>,
    /// True when the writer finished.
    pub complete: bool,
}

/// A block of consecutive records' rows of one matrix (one shard's worth).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Global index of the first record.
    pub first_record: usize,
    /// Number of records.
    pub records: usize,
    /// Their rows (`records` rows, or their tokens for `all`).
    pub matrix: Matrix,
}

impl Store {
    /// Opens the store in `dir` (reads and checks `manifest.json`).
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Store {
            dir: dir.to_path_buf(),
            manifest: Manifest::load(dir)?,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Number of committed records.
    pub fn len(&self) -> usize {
        self.manifest.record_count
    }

    /// True when the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.manifest.record_count == 0
    }

    /// Stored matrices, in manifest order.
    pub fn keys(&self) -> Vec<SiteLayerKey> {
        self.manifest.keys()
    }

    /// Summary for `info`.
    pub fn info(&self) -> StoreInfo {
        let m = &self.manifest;
        StoreInfo {
            dir: self.dir.clone(),
            format_version: m.format_version,
            tool_version: m.tool_version.clone(),
            model: m.model.clone(),
            sites: m.sites.clone(),
            layers: m.layers.clone(),
            positions: m.positions,
            dtype: m.dtype,
            tensors: m.tensors.iter().map(|t| t.name.clone()).collect(),
            records: m.record_count,
            tokens: m.token_count,
            response_tokens: m.response_token_count,
            shards: m.shards.len(),
            shard_bytes: m.shards.iter().map(|s| s.bytes).sum(),
            extra_columns: m.extra_columns.clone(),
            complete: m.complete,
        }
    }

    /// Every committed record's metadata (rows past the manifest's count, left by a crash, are
    /// ignored; fewer rows is an error naming `records.csv`).
    pub fn records(&self) -> Result<Vec<RecordRow>> {
        let path = self.dir.join(RECORDS_FILE);
        let mut rows = read_records(&path, &self.manifest.extra_columns)?;
        if rows.len() < self.manifest.record_count {
            return Err(Error::Records {
                path,
                message: format!(
                    "holds {} rows, the manifest commits {}",
                    rows.len(),
                    self.manifest.record_count
                ),
            });
        }
        rows.truncate(self.manifest.record_count);
        Ok(rows)
    }

    /// Memory-maps shard `i`.
    pub fn shard(&self, i: usize) -> Result<ShardReader> {
        let entry = self.manifest.shards.get(i).ok_or_else(|| Error::Manifest {
            path: Manifest::path(&self.dir),
            message: format!(
                "no shard {i} (the store has {})",
                self.manifest.shards.len()
            ),
        })?;
        ShardReader::open(&self.dir, entry, &self.manifest)
    }

    /// Width of `key`, or `UnknownTensor`.
    pub fn width(&self, key: &SiteLayerKey) -> Result<usize> {
        let name = key.tensor_name();
        self.manifest
            .tensor(&name)
            .map(|t| t.d)
            .ok_or_else(|| Error::UnknownTensor {
                path: self.dir.clone(),
                name,
                available: self
                    .manifest
                    .tensors
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Iterates `key`'s rows one shard at a time (memory: one shard's matrix).
    pub fn chunks(&self, key: &SiteLayerKey) -> Result<impl Iterator<Item = Result<Chunk>> + '_> {
        let d = self.width(key)?;
        let name = key.tensor_name();
        Ok((0..self.manifest.shards.len()).map(move |i| {
            let shard = self.shard(i)?;
            Ok(Chunk {
                first_record: shard.entry.first_record,
                records: shard.entry.records,
                matrix: shard.matrix(&name, d)?,
            })
        }))
    }

    /// The whole matrix of `key`: `[records, d]` for pooled positions, `[tokens, d]` for `all`
    /// (slice records with [`Store::offsets`]).
    pub fn matrix(&self, key: &SiteLayerKey) -> Result<Matrix> {
        let d = self.width(key)?;
        let rows = self.manifest.shards.iter().map(|s| s.rows).sum::<usize>();
        let mut data = Vec::with_capacity(rows * d);
        for c in self.chunks(key)? {
            data.extend_from_slice(&c?.matrix.data);
        }
        Ok(Matrix {
            rows,
            cols: d,
            data,
        })
    }

    /// Global row offsets, `records + 1` entries: record `i` is rows `offsets[i]..offsets[i+1]`
    /// (for pooled positions simply `0, 1, ..., records`).
    pub fn offsets(&self) -> Result<Vec<u64>> {
        let mut out = vec![0u64];
        for i in 0..self.manifest.shards.len() {
            let base = out.last().copied().unwrap_or(0);
            let shard = self.shard(i)?;
            for o in shard.offsets()?.iter().skip(1) {
                out.push(base + o);
            }
        }
        Ok(out)
    }

    /// The rows of record `index` in `key` (1 row, or `n_tokens` rows for `all`).
    pub fn record(&self, index: usize, key: &SiteLayerKey) -> Result<Matrix> {
        let d = self.width(key)?;
        let s = self
            .manifest
            .shards
            .iter()
            .position(|s| index < s.first_record + s.records)
            .ok_or_else(|| Error::RecordOutOfRange {
                path: self.dir.clone(),
                index,
                count: self.manifest.record_count,
            })?;
        let shard = self.shard(s)?;
        let local = index - shard.entry.first_record;
        let offs = shard.offsets()?;
        let (a, b) = (offs[local] as usize, offs[local + 1] as usize);
        shard.rows(&key.tensor_name(), d, a..b)
    }
}

/// One memory-mapped shard.
pub struct ShardReader {
    path: PathBuf,
    mmap: Mmap,
    entry: ShardEntry,
    dtype: StoreDtype,
    positions: Positions,
}

impl ShardReader {
    fn open(dir: &Path, entry: &ShardEntry, m: &Manifest) -> Result<Self> {
        let path = dir.join(&entry.file);
        let file = File::open(&path).map_err(io_at(&path))?;
        let len = file.metadata().map_err(io_at(&path))?.len();
        if len != entry.bytes {
            return Err(Error::Shard {
                path,
                message: format!("{len} bytes, the manifest says {}", entry.bytes),
            });
        }
        // SAFETY: the map is read-only; shards are written once under a temp name and never
        // modified in place, so the bytes cannot change under us unless someone edits the store.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_at(&path))?;
        Ok(ShardReader {
            path,
            mmap,
            entry: entry.clone(),
            dtype: m.dtype,
            positions: m.positions,
        })
    }

    /// The shard's manifest entry.
    pub fn entry(&self) -> &ShardEntry {
        &self.entry
    }

    /// Path of the shard file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bad(&self, message: String) -> Error {
        Error::Shard {
            path: self.path.clone(),
            message,
        }
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| self.bad(e.to_string()))
    }

    /// Names of every tensor in the shard.
    pub fn tensor_names(&self) -> Result<Vec<String>> {
        Ok(self
            .tensors()?
            .names()
            .into_iter()
            .map(String::from)
            .collect())
    }

    /// Raw little-endian bytes of tensor `name`, checked to be `[entry.rows, d]` in the store dtype.
    pub fn raw(&self, name: &str, d: usize) -> Result<&[u8]> {
        let st = self.tensors()?;
        let t = st
            .tensor(name)
            .map_err(|e| self.bad(format!("tensor {name}: {e}")))?;
        if t.dtype() != self.dtype.safetensors() {
            return Err(self.bad(format!(
                "tensor {name} is {:?}, the manifest says {}",
                t.dtype(),
                self.dtype
            )));
        }
        if t.shape() != [self.entry.rows, d] {
            return Err(self.bad(format!(
                "tensor {name} has shape {:?}, expected [{}, {d}]",
                t.shape(),
                self.entry.rows
            )));
        }
        // The view borrows the map, not `st`, so the slice outlives the parsed header.
        let data: &[u8] = t.data();
        Ok(data)
    }

    /// Tensor `name` as f32 (`[entry.rows, d]`).
    pub fn matrix(&self, name: &str, d: usize) -> Result<Matrix> {
        let raw = self.raw(name, d)?;
        let mut data = Vec::with_capacity(self.entry.rows * d);
        self.dtype.decode(raw, &mut data);
        Ok(Matrix {
            rows: self.entry.rows,
            cols: d,
            data,
        })
    }

    /// Rows `range` of tensor `name` as f32.
    pub fn rows(&self, name: &str, d: usize, range: std::ops::Range<usize>) -> Result<Matrix> {
        let raw = self.raw(name, d)?;
        if range.end > self.entry.rows || range.start > range.end {
            return Err(self.bad(format!("rows {range:?} outside 0..{}", self.entry.rows)));
        }
        let w = d * self.dtype.size();
        let mut data = Vec::with_capacity(range.len() * d);
        self.dtype
            .decode(&raw[range.start * w..range.end * w], &mut data);
        Ok(Matrix {
            rows: range.len(),
            cols: d,
            data,
        })
    }

    /// Shard-local row offsets (`records + 1` entries, from 0 to `rows`), checked; for pooled
    /// positions `0..=records`.
    pub fn offsets(&self) -> Result<Vec<u64>> {
        let n = self.entry.records;
        if self.positions.is_pooled() {
            return Ok((0..=n as u64).collect());
        }
        let st = self.tensors()?;
        let t = st
            .tensor(OFFSETS_TENSOR)
            .map_err(|e| self.bad(format!("tensor {OFFSETS_TENSOR}: {e}")))?;
        if t.dtype() != safetensors::Dtype::I64 || t.shape() != [n + 1] {
            return Err(self.bad(format!(
                "offsets are {:?} {:?}, expected I64 [{}]",
                t.dtype(),
                t.shape(),
                n + 1
            )));
        }
        let vals: Vec<i64> = t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        if vals.first() != Some(&0)
            || vals.windows(2).any(|w| w[1] < w[0])
            || vals.last().copied() != Some(self.entry.rows as i64)
        {
            return Err(self.bad(format!(
                "offsets must rise from 0 to {} (rows), got {:?}...",
                self.entry.rows,
                &vals[..vals.len().min(8)]
            )));
        }
        Ok(vals.into_iter().map(|v| v as u64).collect())
    }
}
