//! What a store holds: model identity, sites, layers, positions, dtype; tensor names; encoding.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Which token positions of a record are stored (see `pool` for the exact tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// The last prompt token: one row per record.
    Last,
    /// Mean over all prompt tokens: one row per record.
    Mean,
    /// Mean over the response tokens: one row per record.
    ResponseMean,
    /// The first response token: one row per record.
    ResponseFirst,
    /// Every token (prompt then response): `n_tokens` rows per record, sliced by `offsets`.
    All,
}

impl Positions {
    /// Every mode, in CLI order.
    pub const ALL_MODES: [Positions; 5] = [
        Positions::Last,
        Positions::Mean,
        Positions::ResponseMean,
        Positions::ResponseFirst,
        Positions::All,
    ];

    /// The CLI / manifest spelling (`last`, `mean`, `response-mean`, `response-first`, `all`).
    pub fn as_str(self) -> &'static str {
        match self {
            Positions::Last => "last",
            Positions::Mean => "mean",
            Positions::ResponseMean => "response-mean",
            Positions::ResponseFirst => "response-first",
            Positions::All => "all",
        }
    }

    /// Parses the CLI spelling.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL_MODES
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                Error::Spec(format!(
                    "unknown positions {s:?} (expected last, mean, response-mean, response-first or all)"
                ))
            })
    }

    /// True when each record is stored as one row (everything but `all`).
    pub fn is_pooled(self) -> bool {
        self != Positions::All
    }
}

impl fmt::Display for Positions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Element type of the stored activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDtype {
    /// IEEE single precision, stored exactly.
    F32,
    /// IEEE half precision (round to nearest even, as `half::f16::from_f32`).
    F16,
    /// bfloat16 (round to nearest even, as `half::bf16::from_f32`).
    Bf16,
}

impl StoreDtype {
    /// The CLI / manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreDtype::F32 => "f32",
            StoreDtype::F16 => "f16",
            StoreDtype::Bf16 => "bf16",
        }
    }

    /// Parses the CLI spelling.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(StoreDtype::F32),
            "f16" => Ok(StoreDtype::F16),
            "bf16" => Ok(StoreDtype::Bf16),
            _ => Err(Error::Spec(format!(
                "unknown dtype {s:?} (expected f32, f16 or bf16)"
            ))),
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StoreDtype::F32 => 4,
            StoreDtype::F16 | StoreDtype::Bf16 => 2,
        }
    }

    /// The safetensors dtype tag.
    pub fn safetensors(self) -> safetensors::Dtype {
        match self {
            StoreDtype::F32 => safetensors::Dtype::F32,
            StoreDtype::F16 => safetensors::Dtype::F16,
            StoreDtype::Bf16 => safetensors::Dtype::BF16,
        }
    }

    /// Appends `values` to `out` in this dtype, little endian.
    pub fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        out.reserve(values.len() * self.size());
        match self {
            StoreDtype::F32 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            StoreDtype::F16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
            StoreDtype::Bf16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
        }
    }

    /// Appends the f32 values of little-endian `bytes` in this dtype (a trailing partial element is
    /// ignored; callers check lengths first).
    pub fn decode(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            StoreDtype::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            StoreDtype::F16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            StoreDtype::Bf16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
        }
    }
}

impl fmt::Display for StoreDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who produced the activations: a name for people and a hash that decides identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// Human-readable name (path or repo id); not compared.
    pub name: String,
    /// Hex sha256 of config + weights index/header (see [`model_hash`]); compared on resume.
    pub hash: String,
}

impl fmt::Display for ModelIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sha256:{}", self.name, self.hash)
    }
}

/// Hex sha256 over length-prefixed parts (e.g. `config.json` bytes, then the weights index or
/// safetensors header), so that moving bytes between parts changes the hash.
pub fn model_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One capture site and its width.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSpec {
    /// TransformerLens-style name: `hook_resid_post`, `hook_attn_out`, ..., `ln_final`, `logits`.
    pub name: String,
    /// Width of one row (d_model, or vocab size for `logits`).
    pub d: usize,
    /// True for per-block sites (stored as `blocks.{l}.{name}` for every layer); false for
    /// model-level sites such as `ln_final` and `logits` (stored once, as `{name}`).
    pub per_layer: bool,
}

impl SiteSpec {
    /// A per-block site such as `hook_resid_post`.
    pub fn block(name: &str, d: usize) -> Self {
        SiteSpec {
            name: name.to_string(),
            d,
            per_layer: true,
        }
    }

    /// A model-level site such as `ln_final` or `logits`.
    pub fn global(name: &str, d: usize) -> Self {
        SiteSpec {
            name: name.to_string(),
            d,
            per_layer: false,
        }
    }
}

/// Names one stored matrix: a site, at a layer for per-block sites.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SiteLayerKey {
    /// Site name, e.g. `hook_resid_post`.
    pub site: String,
    /// Block index; `None` for model-level sites.
    pub layer: Option<u32>,
}

impl SiteLayerKey {
    /// Key of a per-block site at `layer`.
    pub fn new(site: &str, layer: u32) -> Self {
        SiteLayerKey {
            site: site.to_string(),
            layer: Some(layer),
        }
    }

    /// Key of a model-level site.
    pub fn global(site: &str) -> Self {
        SiteLayerKey {
            site: site.to_string(),
            layer: None,
        }
    }

    /// The tensor name in shards and the `.npy` stem: `blocks.{l}.{site}` or `{site}`.
    pub fn tensor_name(&self) -> String {
        match self.layer {
            Some(l) => format!("blocks.{l}.{}", self.site),
            None => self.site.clone(),
        }
    }

    /// Parses a tensor name back into a key.
    pub fn parse(name: &str) -> Self {
        if let Some(rest) = name.strip_prefix("blocks.") {
            if let Some((l, site)) = rest.split_once('.') {
                if let Ok(l) = l.parse::<u32>() {
                    return SiteLayerKey::new(site, l);
                }
            }
        }
        SiteLayerKey::global(name)
    }
}

impl fmt::Display for SiteLayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tensor_name())
    }
}

/// Default records per shard.
pub const DEFAULT_SHARD_RECORDS: usize = 256;
/// Default cap on one shard's buffered bytes (all tensors), so `all` positions stay bounded.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 512 << 20;

/// Everything the caller decides when creating a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSpec {
    /// Model that produced the activations.
    pub model: ModelIdentity,
    /// Capture sites, in the caller's order.
    pub sites: Vec<SiteSpec>,
    /// Layers captured for per-block sites, in the caller's order.
    pub layers: Vec<u32>,
    /// Stored positions.
    pub positions: Positions,
    /// Stored element type.
    pub dtype: StoreDtype,
    /// A shard is closed after this many records.
    pub shard_records: usize,
    /// ... or as soon as its buffers reach this many bytes (whichever comes first).
    pub max_shard_bytes: u64,
    /// Version of the tool writing the store.
    pub tool_version: String,
    /// Creation arguments (free-form, e.g. the CLI argv), kept for provenance.
    pub args: serde_json::Value,
    /// Which part of a split prompt list the store holds (`--shard i/n`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

/// A part of a prompt list split over processes (`--shard index/count`): contiguous, in order,
/// `first..first + len` of `total` prompts. The same prompts file gives every command the same
/// parts, so a capture's and a generation's shard `i` hold the same prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// This part, from 0.
    pub index: usize,
    /// Parts in all.
    pub count: usize,
    /// Global index of the part's first prompt.
    pub first: usize,
    /// Prompts in the part.
    pub len: usize,
    /// Prompts in the whole list.
    pub total: usize,
}

impl Split {
    /// Part `index` of `count` of `total` prompts: the prompts `total * index / count ..
    /// total * (index + 1) / count`.
    pub fn new(index: usize, count: usize, total: usize) -> Self {
        let at = |i: usize| total * i / count.max(1);
        Self {
            index,
            count,
            first: at(index),
            len: at(index + 1) - at(index),
            total,
        }
    }

    /// Parses `i/n` (0 <= i < n).
    pub fn parse(text: &str) -> std::result::Result<(usize, usize), String> {
        let bad =
            || format!("--shard {text:?}: expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || i >= n {
            return Err(bad());
        }
        Ok((i, n))
    }

    /// The global prompt indices of the part.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.len
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shard {}/{} (prompts {}..{} of {})",
            self.index,
            self.count,
            self.first,
            self.first + self.len,
            self.total
        )
    }
}

impl StoreSpec {
    /// A spec with default shard size, this crate's version and no recorded arguments.
    pub fn new(
        model: ModelIdentity,
        sites: Vec<SiteSpec>,
        layers: Vec<u32>,
        positions: Positions,
        dtype: StoreDtype,
    ) -> Self {
        StoreSpec {
            model,
            sites,
            layers,
            positions,
            dtype,
            shard_records: DEFAULT_SHARD_RECORDS,
            max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
            tool_version: concat!("tell-store ", env!("CARGO_PKG_VERSION")).to_string(),
            args: serde_json::Value::Null,
            split: None,
        }
    }

    /// Checks the spec is usable (non-empty, unique names and layers, positive widths).
    pub fn validate(&self) -> Result<()> {
        if self.sites.is_empty() {
            return Err(Error::Spec("no capture sites".into()));
        }
        for (i, s) in self.sites.iter().enumerate() {
            if s.name.is_empty() || s.name.contains(['/', '\\']) || s.name == "offsets" {
                return Err(Error::Spec(format!("invalid site name {:?}", s.name)));
            }
            if s.d == 0 {
                return Err(Error::Spec(format!("site {} has width 0", s.name)));
            }
            if self.sites[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::Spec(format!("site {} listed twice", s.name)));
            }
        }
        let per_layer = self.sites.iter().any(|s| s.per_layer);
        if per_layer && self.layers.is_empty() {
            return Err(Error::Spec("per-block sites but no layers".into()));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if self.layers[..i].contains(l) {
                return Err(Error::Spec(format!("layer {l} listed twice")));
            }
        }
        if self.shard_records == 0 {
            return Err(Error::Spec("shard_records must be at least 1".into()));
        }
        if self.model.hash.is_empty() {
            return Err(Error::Spec("model hash is empty".into()));
        }
        Ok(())
    }

    /// Every stored matrix in a fixed order: per site, then per layer for per-block sites.
    pub fn keys(&self) -> Vec<(SiteLayerKey, usize)> {
        keys_of(&self.sites, &self.layers)
    }
}

/// Keys (with widths) for sites x layers, in site order then layer order.
pub(crate) fn keys_of(sites: &[SiteSpec], layers: &[u32]) -> Vec<(SiteLayerKey, usize)> {
    let mut out = Vec::new();
    for s in sites {
        if s.per_layer {
            out.extend(layers.iter().map(|&l| (SiteLayerKey::new(&s.name, l), s.d)));
        } else {
            out.push((SiteLayerKey::global(&s.name), s.d));
        }
    }
    out
}
