//! `StoreWriter`: buffers one shard, commits it crash-safely, resumes after a crash.
//!
//! Commit order of a shard: shard temp file -> fsync -> rename; then `records.csv` (temp + rename);
//! then `manifest.json` (temp + rename). The manifest is the commit point: a shard or a row that it
//! does not count is an unfinished leftover, removed or trimmed by [`StoreWriter::resume`]. A
//! writer dropped without [`StoreWriter::finish`] loses only its buffered (uncommitted) records.

use crate::error::{io_at, Error, Result};
use crate::fsio;
use crate::manifest::{shard_file_name, Manifest, ShardEntry, OFFSETS_TENSOR, RECORDS_FILE};
use crate::pool::pool_into;
use crate::records::{self, RecordMeta, FIXED_COLUMNS};
use crate::spec::{Positions, SiteLayerKey, StoreSpec};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What [`StoreWriter::resume`] found and cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeReport {
    /// Records already committed; the caller skips this many inputs.
    pub completed_records: usize,
    /// Shards already committed.
    pub completed_shards: usize,
    /// Leftover temp files and uncommitted shards that were deleted.
    pub removed_files: Vec<PathBuf>,
    /// Uncommitted rows dropped from `records.csv`.
    pub dropped_rows: usize,
    /// True when no store existed and a new one was created.
    pub created: bool,
}

/// Writes an activation store shard by shard; see the module docs for crash safety.
pub struct StoreWriter {
    dir: PathBuf,
    manifest: Manifest,
    keys: Vec<(SiteLayerKey, usize)>,
    index: HashMap<SiteLayerKey, usize>,
    /// Encoded rows of the open shard, one buffer per key (capacity reused across shards).
    bufs: Vec<Vec<u8>>,
    /// Token offsets of the open shard's records (`all` positions), starting at 0.
    offsets: Vec<i64>,
    pending: Vec<RecordMeta>,
    /// Extra columns: the committed ones plus those first seen in the open shard.
    columns: Vec<String>,
    buffered_bytes: u64,
    scratch: Vec<f32>,
    report: ResumeReport,
}

impl StoreWriter {
    /// Creates a new store in `dir` (created if missing). An existing store is refused
    /// (`StoreExists`, or `OtherModel` when its model differs) unless `force`, which deletes the
    /// store's own files (manifest, records, shards) and nothing else.
    pub fn create(dir: &Path, spec: StoreSpec, force: bool) -> Result<Self> {
        spec.validate()?;
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let manifest_path = Manifest::path(dir);
        if !force {
            if manifest_path.exists() {
                if let Ok(m) = Manifest::load(dir) {
                    if m.model.hash != spec.model.hash {
                        return Err(Error::OtherModel {
                            path: dir.to_path_buf(),
                            found: m.model.to_string(),
                            requested: spec.model.to_string(),
                        });
                    }
                }
                return Err(Error::StoreExists {
                    path: dir.to_path_buf(),
                });
            }
            if !store_files(dir)?.iter().all(|p| is_tmp(p)) {
                return Err(Error::StoreExists {
                    path: dir.to_path_buf(),
                });
            }
        }
        for p in store_files(dir)? {
            fs::remove_file(&p).map_err(io_at(&p))?;
        }
        let manifest = Manifest::new(&spec);
        records::rewrite(dir, 0, &[], &[], &[])?;
        manifest.save(dir)?;
        let mut w = Self::from_manifest(dir, manifest);
        w.report.created = true;
        Ok(w)
    }

    /// Opens the store in `dir` to continue it: checks that it was made by the same model
    /// (`OtherModel` otherwise, unless `force`, which starts over) with the same sites, layers,
    /// positions and dtype (`SpecMismatch` naming the field, unless `force`); removes temp files
    /// and uncommitted shards; trims uncommitted rows. Creates the store if `dir` holds none.
    /// The stored shard size wins over `spec`'s, so shard boundaries stay those of one run.
    pub fn resume(dir: &Path, spec: StoreSpec, force: bool) -> Result<Self> {
        spec.validate()?;
        if !Manifest::path(dir).exists() {
            return Self::create(dir, spec, force);
        }
        let m = match Manifest::load(dir) {
            Ok(m) => m,
            Err(_) if force => return Self::create(dir, spec, true),
            Err(e) => return Err(e),
        };
        if let Err(e) = check_same(dir, &m, &spec) {
            return if force {
                Self::create(dir, spec, true)
            } else {
                Err(e)
            };
        }
        for s in &m.shards {
            let p = dir.join(&s.file);
            let len = fs::metadata(&p).map_err(io_at(&p))?.len();
            if len != s.bytes {
                return Err(Error::Shard {
                    path: p,
                    message: format!("{len} bytes, the manifest says {}", s.bytes),
                });
            }
        }
        let committed: Vec<&str> = m.shards.iter().map(|s| s.file.as_str()).collect();
        let mut removed = Vec::new();
        for p in store_files(dir)? {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let orphan_shard = name.starts_with("shard-") && !committed.contains(&name);
            if is_tmp(&p) || orphan_shard {
                fs::remove_file(&p).map_err(io_at(&p))?;
                removed.push(p);
            }
        }
        let dropped = trim_records(dir, &m)?;
        let mut w = Self::from_manifest(dir, m);
        w.manifest.complete = false;
        w.report = ResumeReport {
            completed_records: w.manifest.record_count,
            completed_shards: w.manifest.shards.len(),
            removed_files: removed,
            dropped_rows: dropped,
            created: false,
        };
        Ok(w)
    }

    fn from_manifest(dir: &Path, manifest: Manifest) -> Self {
        let keys: Vec<(SiteLayerKey, usize)> = manifest
            .tensors
            .iter()
            .map(|t| {
                (
                    SiteLayerKey {
                        site: t.site.clone(),
                        layer: t.layer,
                    },
                    t.d,
                )
            })
            .collect();
        let index = keys
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        StoreWriter {
            dir: dir.to_path_buf(),
            columns: manifest.extra_columns.clone(),
            bufs: vec![Vec::new(); keys.len()],
            offsets: vec![0],
            pending: Vec::new(),
            buffered_bytes: 0,
            scratch: Vec::new(),
            report: ResumeReport {
                completed_records: manifest.record_count,
                completed_shards: manifest.shards.len(),
                ..ResumeReport::default()
            },
            manifest,
            keys,
            index,
        }
    }

    /// Records committed to disk (after resume: how many inputs to skip).
    pub fn completed_records(&self) -> usize {
        self.manifest.record_count
    }

    /// Records buffered in the open shard, not yet on disk.
    pub fn pending_records(&self) -> usize {
        self.pending.len()
    }

    /// What `resume` (or `create`) found.
    pub fn resume_report(&self) -> &ResumeReport {
        &self.report
    }

    /// The manifest as last committed (plus `complete` after `finish`).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every matrix a record must provide, with its width, in manifest order.
    pub fn keys(&self) -> &[(SiteLayerKey, usize)] {
        &self.keys
    }

    /// Adds one record. `values` holds every key exactly once: a row of `d` values for pooled
    /// positions, or `n_tokens x d` row-major values for `all`. Returns true when the push
    /// completed and committed a shard. A refused record (bad lengths, keys or metadata) leaves
    /// nothing buffered; an I/O error while committing keeps the shard buffered (`flush` retries).
    pub fn push_record(
        &mut self,
        meta: RecordMeta,
        values: &[(SiteLayerKey, &[f32])],
    ) -> Result<bool> {
        let index = self.manifest.record_count + self.pending.len();
        let bad = |message: String| Error::Record {
            index,
            id: meta.id.clone(),
            message,
        };
        check_meta(&meta, self.manifest.positions).map_err(bad)?;
        let rows = if self.manifest.positions == Positions::All {
            meta.n_tokens
        } else {
            1
        };
        let mut slots: Vec<Option<&[f32]>> = vec![None; self.keys.len()];
        for (key, v) in values {
            let i = *self
                .index
                .get(key)
                .ok_or_else(|| bad(format!("{key} is not one of the store's tensors")))?;
            if slots[i].is_some() {
                return Err(bad(format!("{key} given twice")));
            }
            let want = rows * self.keys[i].1;
            if v.len() != want {
                return Err(bad(format!(
                    "{key} has {} values, expected {rows} row(s) x d {} = {want}",
                    v.len(),
                    self.keys[i].1
                )));
            }
            slots[i] = Some(v);
        }
        if let Some(i) = slots.iter().position(Option::is_none) {
            return Err(bad(format!("no values for {}", self.keys[i].0)));
        }
        // All checks passed: only now touch the buffers, so a bad record leaves no trace.
        let dtype = self.manifest.dtype;
        for (buf, v) in self.bufs.iter_mut().zip(slots.into_iter().flatten()) {
            dtype.encode(v, buf);
            self.buffered_bytes += (v.len() * dtype.size()) as u64;
        }
        let last = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(last + meta.n_tokens as i64);
        for (k, _) in &meta.extra {
            if !self.columns.contains(k) {
                self.columns.push(k.clone());
            }
        }
        self.pending.push(meta);
        if self.pending.len() >= self.manifest.shard_records
            || self.buffered_bytes >= self.manifest.max_shard_bytes
        {
            self.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Adds one record from per-token blocks `[n_tokens, d]` (row-major, no padding), pooling
    /// each per the store's positions (see [`crate::pool`]).
    pub fn push_tokens(
        &mut self,
        meta: RecordMeta,
        blocks: &[(SiteLayerKey, &[f32])],
    ) -> Result<bool> {
        let index = self.manifest.record_count + self.pending.len();
        let positions = self.manifest.positions;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut ranges = Vec::with_capacity(blocks.len());
        for (key, block) in blocks {
            let d = self
                .index
                .get(key)
                .map(|&i| self.keys[i].1)
                .ok_or_else(|| Error::Record {
                    index,
                    id: meta.id.clone(),
                    message: format!("{key} is not one of the store's tensors"),
                })?;
            let start = scratch.len();
            pool_into(
                positions,
                block,
                d,
                meta.prompt_tokens(),
                meta.n_response_tokens,
                &mut scratch,
            )
            .map_err(|e| Error::Record {
                index,
                id: meta.id.clone(),
                message: format!("{key}: {e}"),
            })?;
            ranges.push((key.clone(), start..scratch.len()));
        }
        let values: Vec<(SiteLayerKey, &[f32])> =
            ranges.into_iter().map(|(k, r)| (k, &scratch[r])).collect();
        let out = self.push_record(meta, &values);
        drop(values);
        self.scratch = scratch;
        out
    }

    /// Commits the buffered records now as a (possibly short) shard; no-op when none are buffered.
    /// Use it to stop early (Ctrl-C) and leave a store that `resume` continues.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let m = &self.manifest;
        let file = shard_file_name(m.shards.len());
        let path = self.dir.join(&file);
        let tmp = fsio::tmp_path(&path);
        let n = self.pending.len();
        let rows = match m.positions {
            Positions::All => self.offsets.last().copied().unwrap_or(0) as usize,
            _ => n,
        };
        let offsets_bytes: Vec<u8> = self.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        let mut views: Vec<(String, BufView)> = self
            .keys
            .iter()
            .zip(&self.bufs)
            .map(|((k, d), buf)| {
                (
                    k.tensor_name(),
                    BufView {
                        dtype: m.dtype.safetensors(),
                        shape: vec![rows, *d],
                        data: buf,
                    },
                )
            })
            .collect();
        if m.positions == Positions::All {
            views.push((
                OFFSETS_TENSOR.to_string(),
                BufView {
                    dtype: safetensors::Dtype::I64,
                    shape: vec![n + 1],
                    data: &offsets_bytes,
                },
            ));
        }
        safetensors::serialize_to_file(views, None, &tmp).map_err(|e| Error::Shard {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        let (sha256, bytes) = fsio::sha256_file(&tmp)?;
        fsio::commit(&tmp, &path)?;

        let first = m.record_count;
        let rows_meta: Vec<(usize, &RecordMeta)> = self
            .pending
            .iter()
            .enumerate()
            .map(|(i, r)| (first + i, r))
            .collect();
        records::rewrite(
            &self.dir,
            first,
            &m.extra_columns,
            &self.columns,
            &rows_meta,
        )?;

        let tokens: u64 = self.pending.iter().map(|r| r.n_tokens as u64).sum();
        let m = &mut self.manifest;
        m.shards.push(ShardEntry {
            file,
            first_record: first,
            records: n,
            rows,
            tokens,
            bytes,
            sha256,
        });
        m.record_count += n;
        m.token_count += tokens;
        m.response_token_count += self
            .pending
            .iter()
            .map(|r| r.n_response_tokens as u64)
            .sum::<u64>();
        m.extra_columns = self.columns.clone();
        m.save(&self.dir)?;

        self.bufs.iter_mut().for_each(Vec::clear);
        self.offsets.truncate(1);
        self.pending.clear();
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Commits the last shard and marks the store complete; returns the final manifest.
    pub fn finish(mut self) -> Result<Manifest> {
        self.flush()?;
        self.manifest.complete = true;
        self.manifest.save(&self.dir)?;
        Ok(self.manifest)
    }
}

/// Borrowed tensor bytes for `safetensors::serialize_to_file` (streams, no copy of the shard).
struct BufView<'a> {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: &'a [u8],
}

impl safetensors::View for BufView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Checks record metadata against the positions mode (the tokens it pools must exist).
fn check_meta(meta: &RecordMeta, positions: Positions) -> std::result::Result<(), String> {
    if meta.n_response_tokens > meta.n_tokens {
        return Err(format!(
            "n_response_tokens {} exceeds n_tokens {}",
            meta.n_response_tokens, meta.n_tokens
        ));
    }
    match positions {
        Positions::Last | Positions::Mean if meta.prompt_tokens() == 0 => {
            return Err(format!(
                "positions {positions} need at least one prompt token"
            ))
        }
        Positions::ResponseMean | Positions::ResponseFirst if meta.n_response_tokens == 0 => {
            return Err(format!(
                "positions {positions} need a response, but the record has no response tokens"
            ))
        }
        Positions::All if meta.n_tokens == 0 => return Err("record has no tokens".into()),
        _ => {}
    }
    for (i, (k, _)) in meta.extra.iter().enumerate() {
        if k.is_empty() || FIXED_COLUMNS.contains(&k.as_str()) {
            return Err(format!("extra field {k:?} clashes with a fixed column"));
        }
        if meta.extra[..i].iter().any(|(o, _)| o == k) {
            return Err(format!("extra field {k:?} given twice"));
        }
    }
    Ok(())
}

/// Refuses to resume a store of another model or with another layout.
fn check_same(dir: &Path, m: &Manifest, spec: &StoreSpec) -> Result<()> {
    if m.model.hash != spec.model.hash {
        return Err(Error::OtherModel {
            path: dir.to_path_buf(),
            found: m.model.to_string(),
            requested: spec.model.to_string(),
        });
    }
    let mismatch = |field, found: String, requested: String| Error::SpecMismatch {
        path: dir.to_path_buf(),
        field,
        found,
        requested,
    };
    let sites = |s: &[crate::spec::SiteSpec]| {
        s.iter()
            .map(|s| {
                format!(
                    "{}(d={}{})",
                    s.name,
                    s.d,
                    if s.per_layer { "" } else { ", global" }
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    if m.sites != spec.sites {
        return Err(mismatch("sites", sites(&m.sites), sites(&spec.sites)));
    }
    if m.layers != spec.layers {
        return Err(mismatch(
            "layers",
            format!("{:?}", m.layers),
            format!("{:?}", spec.layers),
        ));
    }
    if m.positions != spec.positions {
        return Err(mismatch(
            "positions",
            m.positions.to_string(),
            spec.positions.to_string(),
        ));
    }
    if m.dtype != spec.dtype {
        return Err(mismatch(
            "dtype",
            m.dtype.to_string(),
            spec.dtype.to_string(),
        ));
    }
    if m.split != spec.split {
        let show =
            |s: Option<crate::spec::Split>| s.map_or("the whole list".into(), |s| s.to_string());
        return Err(mismatch("shard", show(m.split), show(spec.split)));
    }
    Ok(())
}

/// Drops rows of `records.csv` past the manifest's count (written just before a crash).
fn trim_records(dir: &Path, m: &Manifest) -> Result<usize> {
    let path = dir.join(RECORDS_FILE);
    let rows = if path.exists() {
        records::read_records(&path, &m.extra_columns)
            .map(|r| r.len())
            .unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    if rows == m.record_count {
        return Ok(0);
    }
    // Rewrite from the committed prefix (fails, naming the file, if rows are missing).
    records::rewrite_prefix(dir, m.record_count, &m.extra_columns)?;
    Ok(rows.saturating_sub(m.record_count))
}

fn is_tmp(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.ends_with(fsio::TMP_SUFFIX))
}

/// The store's own files in `dir` (see [`fsio::is_store_file`]), sorted.
fn store_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_at(dir))? {
        let e = e.map_err(io_at(dir))?;
        if e.file_name().to_str().is_some_and(fsio::is_store_file) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}
