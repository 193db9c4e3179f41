//! `manifest.json`: the store's table of contents and the commit point of every shard.

use crate::error::{io_at, Error, Result};
use crate::fsio;
use crate::spec::{
    keys_of, ModelIdentity, Positions, SiteLayerKey, SiteSpec, StoreDtype, StoreSpec,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the manifest inside a store directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the per-record metadata table.
pub const RECORDS_FILE: &str = "records.csv";
/// Name of the per-shard record offsets tensor (only with `all` positions).
pub const OFFSETS_TENSOR: &str = "offsets";
/// Value of the `format` field.
pub const FORMAT_NAME: &str = "tell-activation-store";
/// Current on-disk format version; readers refuse newer ones.
pub const FORMAT_VERSION: u32 = 1;

/// File name of shard `index` (`shard-00000.safetensors`).
pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:05}.safetensors")
}

/// One committed shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name relative to the store directory.
    pub file: String,
    /// Global index of the shard's first record.
    pub first_record: usize,
    /// Number of records in the shard (records `first_record .. first_record + records`).
    pub records: usize,
    /// Rows per tensor: `records` for pooled positions, the shard's token count for `all`.
    pub rows: usize,
    /// Sum of `n_tokens` over the shard's records.
    pub tokens: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Hex sha256 of the whole file.
    pub sha256: String,
}

/// One stored matrix as listed in the manifest (handy for readers in other languages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Tensor name in each shard, e.g. `blocks.12.hook_resid_post`.
    pub name: String,
    /// Site name.
    pub site: String,
    /// Layer, for per-block sites.
    pub layer: Option<u32>,
    /// Row width.
    pub d: usize,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// On-disk format version.
    pub format_version: u32,
    /// Version of the tool that created the store.
    pub tool_version: String,
    /// Model identity.
    pub model: ModelIdentity,
    /// Capture sites with widths.
    pub sites: Vec<SiteSpec>,
    /// Layers of per-block sites.
    pub layers: Vec<u32>,
    /// Stored positions.
    pub positions: Positions,
    /// Stored element type.
    pub dtype: StoreDtype,
    /// Every tensor a shard holds (besides `offsets`), in a fixed order.
    pub tensors: Vec<TensorEntry>,
    /// Records per shard.
    pub shard_records: usize,
    /// Byte cap per shard.
    pub max_shard_bytes: u64,
    /// Committed records (the sum over `shards`).
    pub record_count: usize,
    /// Sum of `n_tokens` over committed records.
    pub token_count: u64,
    /// Sum of `n_response_tokens` over committed records.
    pub response_token_count: u64,
    /// Extra metadata columns of `records.csv`, in order of first appearance.
    pub extra_columns: Vec<String>,
    /// Committed shards, in record order.
    pub shards: Vec<ShardEntry>,
    /// True once the writer finished; false while capturing or after a crash.
    pub complete: bool,
    /// Arguments the store was created with.
    pub args: serde_json::Value,
    /// The part of a split prompt list this store holds (`--shard i/n`); `None` for a whole one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<crate::spec::Split>,
}

impl Manifest {
    /// An empty manifest for `spec`.
    pub fn new(spec: &StoreSpec) -> Self {
        Manifest {
            format: FORMAT_NAME.to_string(),
            format_version: FORMAT_VERSION,
            tool_version: spec.tool_version.clone(),
            model: spec.model.clone(),
            sites: spec.sites.clone(),
            layers: spec.layers.clone(),
            positions: spec.positions,
            dtype: spec.dtype,
            tensors: keys_of(&spec.sites, &spec.layers)
                .into_iter()
                .map(|(k, d)| TensorEntry {
                    name: k.tensor_name(),
                    site: k.site,
                    layer: k.layer,
                    d,
                })
                .collect(),
            shard_records: spec.shard_records,
            max_shard_bytes: spec.max_shard_bytes,
            record_count: 0,
            token_count: 0,
            response_token_count: 0,
            extra_columns: Vec::new(),
            shards: Vec::new(),
            complete: false,
            args: spec.args.clone(),
            split: spec.split,
        }
    }

    /// Path of the manifest in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads and checks `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(io_at(&path))?;
        let bad = |message: String| Error::Manifest {
            path: path.clone(),
            message,
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if m.format != FORMAT_NAME {
            return Err(bad(format!(
                "format is {:?}, not {FORMAT_NAME:?}",
                m.format
            )));
        }
        if m.format_version > FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} is newer than this reader ({FORMAT_VERSION})",
                m.format_version
            )));
        }
        m.check_consistent().map_err(bad)?;
        Ok(m)
    }

    /// Internal consistency: contiguous shard ranges, totals, tensor list.
    fn check_consistent(&self) -> std::result::Result<(), String> {
        let expect: Vec<TensorEntry> = Manifest::new(&StoreSpec {
            model: self.model.clone(),
            sites: self.sites.clone(),
            layers: self.layers.clone(),
            positions: self.positions,
            dtype: self.dtype,
            shard_records: self.shard_records,
            max_shard_bytes: self.max_shard_bytes,
            tool_version: String::new(),
            args: serde_json::Value::Null,
            split: None,
        })
        .tensors;
        if expect != self.tensors {
            return Err("tensor list does not match sites x layers".into());
        }
        let mut next = 0usize;
        let mut tokens = 0u64;
        for (i, s) in self.shards.iter().enumerate() {
            if s.file != shard_file_name(i) {
                return Err(format!(
                    "shard {i} is named {:?}, expected {:?}",
                    s.file,
                    shard_file_name(i)
                ));
            }
            if s.first_record != next {
                return Err(format!(
                    "shard {} starts at record {}, expected {next}",
                    s.file, s.first_record
                ));
            }
            if s.records == 0 {
                return Err(format!("shard {} holds no records", s.file));
            }
            next += s.records;
            tokens += s.tokens;
        }
        if next != self.record_count {
            return Err(format!(
                "shards hold {next} records but record_count is {}",
                self.record_count
            ));
        }
        if tokens != self.token_count {
            return Err(format!(
                "shards hold {tokens} tokens but token_count is {}",
                self.token_count
            ));
        }
        Ok(())
    }

    /// Writes the manifest atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        fsio::write_atomic(&path, &bytes)
    }

    /// The stored matrices as keys, in manifest order.
    pub fn keys(&self) -> Vec<SiteLayerKey> {
        self.tensors
            .iter()
            .map(|t| SiteLayerKey {
                site: t.site.clone(),
                layer: t.layer,
            })
            .collect()
    }

    /// The tensor entry for `name`, if stored.
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
