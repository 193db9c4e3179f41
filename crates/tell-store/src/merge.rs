//! `tell store merge`: the stores of a split capture (`--shard i/n`) into one store in prompt
//! order, equal to the store one process would have written.
//!
//! Every shard is checked before anything is written: complete (a shard still being written, or
//! stopped, is refused), of the same model, sites, layers, positions, dtype and split, and
//! together covering every part exactly once. The shards are only read.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::reader::Store;
use crate::records::RecordMeta;
use crate::spec::{SiteLayerKey, Split, StoreSpec};
use crate::writer::StoreWriter;

/// The records column a shard's records carry their global prompt index in; the merged store
/// (in prompt order) does not need it.
pub const PROMPT_INDEX: &str = "prompt_index";

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// The merged store.
    pub dir: PathBuf,
    /// Shards merged.
    pub shards: usize,
    /// Records written.
    pub records: usize,
}

/// Merges the shard stores `shards` (any order) into a new store at `out`.
pub fn merge(shards: &[PathBuf], out: &Path, force: bool) -> Result<MergeReport> {
    if shards.is_empty() {
        return Err(Error::Merge("no shards given".into()));
    }
    let out_abs = std::fs::canonicalize(out).ok();
    let mut opened: Vec<(PathBuf, Store, Split)> = Vec::new();
    for dir in shards {
        let name = dir.display();
        if out_abs.is_some() && std::fs::canonicalize(dir).ok() == out_abs {
            return Err(Error::Merge(format!(
                "{name} is both a shard and the output"
            )));
        }
        let store = Store::open(dir)
            .map_err(|e| Error::Merge(format!("shard {name} cannot be read: {e}")))?;
        let m = store.manifest();
        let Some(split) = m.split else {
            return Err(Error::Merge(format!(
                "{name} is not a shard (it was captured without --shard)"
            )));
        };
        if !m.complete {
            return Err(Error::Merge(format!(
                "shard {name} ({split}) is not complete: it is still being written, or it \
                 stopped ({} of {} records; finish it with --resume)",
                m.record_count, split.len
            )));
        }
        if m.record_count != split.len {
            return Err(Error::Merge(format!(
                "shard {name} ({split}) holds {} records",
                m.record_count
            )));
        }
        opened.push((dir.clone(), store, split));
    }
    let (first_dir, first, first_split) = {
        let (d, s, sp) = &opened[0];
        (d.display().to_string(), s.manifest().clone(), *sp)
    };
    for (dir, store, split) in &opened[1..] {
        let m = store.manifest();
        let differs = |field: &str, a: String, b: String| {
            Error::Merge(format!(
                "shard {} has {field} {a}, shard {first_dir} has {b}: not the same capture",
                dir.display()
            ))
        };
        if m.model.hash != first.model.hash {
            return Err(differs(
                "model",
                m.model.to_string(),
                first.model.to_string(),
            ));
        }
        if m.sites != first.sites {
            return Err(differs(
                "sites",
                format!("{:?}", names(&m.sites)),
                format!("{:?}", names(&first.sites)),
            ));
        }
        if m.layers != first.layers {
            return Err(differs(
                "layers",
                format!("{:?}", m.layers),
                format!("{:?}", first.layers),
            ));
        }
        if m.positions != first.positions {
            return Err(differs(
                "positions",
                m.positions.to_string(),
                first.positions.to_string(),
            ));
        }
        if m.dtype != first.dtype {
            return Err(differs(
                "dtype",
                m.dtype.to_string(),
                first.dtype.to_string(),
            ));
        }
        if (split.count, split.total) != (first_split.count, first_split.total) {
            return Err(differs(
                "a split",
                format!("into {} of {} prompts", split.count, split.total),
                format!(
                    "into {} of {} prompts",
                    first_split.count, first_split.total
                ),
            ));
        }
    }
    opened.sort_by_key(|(_, _, s)| s.index);
    for pair in opened.windows(2) {
        if pair[0].2.index == pair[1].2.index {
            return Err(Error::Merge(format!(
                "{} and {} are both shard {}/{}",
                pair[0].0.display(),
                pair[1].0.display(),
                pair[0].2.index,
                pair[0].2.count
            )));
        }
    }
    let have: Vec<usize> = opened.iter().map(|(_, _, s)| s.index).collect();
    if let Some(missing) = (0..first_split.count).find(|i| !have.contains(i)) {
        let gap = Split::new(missing, first_split.count, first_split.total);
        return Err(Error::Merge(format!(
            "{gap} is missing (given: shards {have:?} of {})",
            first_split.count
        )));
    }
    let mut spec = StoreSpec::new(
        first.model.clone(),
        first.sites.clone(),
        first.layers.clone(),
        first.positions,
        first.dtype,
    );
    spec.shard_records = first.shard_records;
    spec.max_shard_bytes = first.max_shard_bytes;
    spec.tool_version = first.tool_version.clone();
    spec.args = serde_json::json!({
        "merged_from": opened.iter().map(|(d, _, _)| d.display().to_string()).collect::<Vec<_>>(),
        "shard_args": first.args,
    });
    let mut writer = StoreWriter::create(out, spec, force)?;
    let mut records = 0;
    for (dir, store, split) in &opened {
        let keys = store.keys();
        let widths: Vec<usize> = keys.iter().map(|k| store.width(k)).collect::<Result<_>>()?;
        let rows = store.records()?;
        let mut next = 0;
        for si in 0..store.manifest().shards.len() {
            let shard = store.shard(si)?;
            let offsets = shard.offsets()?;
            let mats = keys
                .iter()
                .zip(&widths)
                .map(|(k, &d)| shard.matrix(&k.tensor_name(), d))
                .collect::<Result<Vec<_>>>()?;
            for local in 0..shard.entry().records {
                let (a, b) = (offsets[local] as usize, offsets[local + 1] as usize);
                let row = &rows[next];
                let meta = without_index(&row.meta, split.first + next, dir)?;
                let values: Vec<(SiteLayerKey, &[f32])> = keys
                    .iter()
                    .zip(&mats)
                    .map(|(k, m)| (k.clone(), &m.data[a * m.cols..b * m.cols]))
                    .collect();
                writer.push_record(meta, &values)?;
                next += 1;
                records += 1;
            }
        }
    }
    writer.finish()?;
    Ok(MergeReport {
        dir: out.to_owned(),
        shards: opened.len(),
        records,
    })
}

fn names(sites: &[crate::spec::SiteSpec]) -> Vec<String> {
    sites.iter().map(|s| s.name.clone()).collect()
}

/// A shard record's metadata without its prompt index, which must be `want`.
fn without_index(meta: &RecordMeta, want: usize, dir: &Path) -> Result<RecordMeta> {
    let mut meta = meta.clone();
    if let Some(i) = meta.extra.iter().position(|(k, _)| k == PROMPT_INDEX) {
        let (_, v) = meta.extra.remove(i);
        if v.parse::<usize>().ok() != Some(want) {
            return Err(Error::Merge(format!(
                "shard {}: record {:?} has prompt_index {v}, its place in the split is {want}",
                dir.display(),
                meta.id
            )));
        }
    }
    Ok(meta)
}
