//! Probe files: `probe.safetensors` (direction, bias, mean, std as f32) and `probe.json`
//! (where the probe reads, how it was trained, its threshold and metrics).

use crate::error::{ProbeError, Result};
use crate::probe::{Family, Probe};
use crate::standardize::Standardizer;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// File name of the tensors.
pub const TENSORS_FILE: &str = "probe.safetensors";
/// File name of the metadata.
pub const META_FILE: &str = "probe.json";

/// Everything in `probe.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeMeta {
    /// Capture site, e.g. `blocks.12.hook_resid_post`.
    pub site: String,
    /// Layer index.
    pub layer: usize,
    /// Token position (`last`, `mean`, ...).
    pub position: String,
    /// Probe family.
    pub family: Family,
    /// Score threshold at the target false-positive rate.
    pub threshold: f64,
    /// That target rate.
    pub fpr: f64,
    /// Where the threshold was set (`control:<name>`, `heldout-negatives` or `none`).
    pub threshold_source: String,
    /// What a positive label means, e.g. `label=deep` from `labels.csv`.
    pub label_definition: String,
    /// sha256 of the training features, labels and groups ([`training_hash`]).
    pub training_data_hash: String,
    /// Features the probe reads.
    pub n_features: usize,
    /// L2 strength (logreg).
    pub l2: Option<f64>,
    /// Covariance shrinkage (lda).
    pub shrinkage: Option<f64>,
    /// Cross-validated metrics (free-form, e.g. the pooled summary).
    pub metrics: serde_json::Value,
    /// Version of tell-probe that wrote the file.
    pub tool_version: String,
}

/// A probe with its metadata, as stored on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeArtifact {
    /// The probe.
    pub probe: Probe,
    /// Its metadata.
    pub meta: ProbeMeta,
}

/// Where a probe reads and what its label means, supplied by the caller (the store/CLI).
#[derive(Clone, Copy, Debug)]
pub struct Provenance<'a> {
    /// Capture site.
    pub site: &'a str,
    /// Layer index.
    pub layer: usize,
    /// Token position.
    pub position: &'a str,
    /// What a positive label means, e.g. `label=deep`.
    pub label_definition: &'a str,
}

impl ProbeArtifact {
    /// Packs a [`crate::ProbeReport`] (final probe, threshold, pooled metrics) with its provenance
    /// and the hash of the training data it was fitted on.
    pub fn from_report(
        report: &crate::cv::ProbeReport,
        prov: &Provenance,
        x: &crate::data::Matrix,
        labels: &[bool],
        groups: &[u32],
    ) -> Self {
        let p = &report.cv.pooled;
        let meta = ProbeMeta {
            site: prov.site.to_string(),
            layer: prov.layer,
            position: prov.position.to_string(),
            family: report.probe.family,
            threshold: report.threshold,
            fpr: p.fpr,
            threshold_source: p.threshold_source.clone(),
            label_definition: prov.label_definition.to_string(),
            training_data_hash: training_hash(x.data(), x.n_cols(), labels, groups),
            n_features: report.probe.n_features(),
            l2: report.probe.l2,
            shrinkage: report.probe.shrinkage,
            metrics: serde_json::to_value(p).unwrap_or(serde_json::Value::Null),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        ProbeArtifact {
            probe: report.probe.clone(),
            meta,
        }
    }
}

/// sha256 over the feature bytes (little-endian f32), shape, labels and groups, hex encoded.
pub fn training_hash(x: &[f32], n_cols: usize, labels: &[bool], groups: &[u32]) -> String {
    let mut h = Sha256::new();
    h.update((x.len() as u64).to_le_bytes());
    h.update((n_cols as u64).to_le_bytes());
    for chunk in x.chunks(4096) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        h.update(&bytes);
    }
    h.update(labels.iter().map(|&l| l as u8).collect::<Vec<u8>>());
    for g in groups {
        h.update(g.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl ProbeArtifact {
    /// Writes `probe.safetensors` and `probe.json` into `dir` (created if missing).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| ProbeError::io(dir, e))?;
        let p = &self.probe;
        let d = p.n_features();
        let buffers = [
            ("direction", f32_bytes(&p.direction), vec![d]),
            ("bias", f32_bytes(&[p.bias]), vec![1]),
            ("mean", f32_bytes(&p.standardizer.mean), vec![d]),
            ("std", f32_bytes(&p.standardizer.std), vec![d]),
            ("direction_raw", f32_bytes(&p.raw_direction()), vec![d]),
        ];
        let tpath = dir.join(TENSORS_FILE);
        let terr = |reason: String| ProbeError::Tensors {
            path: tpath.display().to_string(),
            reason,
        };
        let mut views = Vec::new();
        for (name, bytes, shape) in &buffers {
            let v = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| terr(format!("{name}: {e}")))?;
            views.push((name.to_string(), v));
        }
        let mut info = std::collections::HashMap::new();
        info.insert("family".to_string(), p.family.name().to_string());
        info.insert(
            "direction_raw".to_string(),
            "direction / std: the probe's direction in raw activation space (score = \
             direction_raw . x + bias - direction_raw . mean); `direction` is in standardised space"
                .to_string(),
        );
        let bytes = safetensors::serialize(views, Some(info)).map_err(|e| terr(e.to_string()))?;
        write_atomic(&tpath, &bytes)?;
        let jpath = dir.join(META_FILE);
        let json = serde_json::to_vec_pretty(&self.meta).map_err(|e| ProbeError::Json {
            path: jpath.display().to_string(),
            source: e,
        })?;
        write_atomic(&jpath, &json)
    }

    /// Reads a probe directory written by [`ProbeArtifact::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let jpath = dir.join(META_FILE);
        let json = std::fs::read(&jpath).map_err(|e| ProbeError::io(&jpath, e))?;
        let meta: ProbeMeta = serde_json::from_slice(&json).map_err(|e| ProbeError::Json {
            path: jpath.display().to_string(),
            source: e,
        })?;
        let tpath = dir.join(TENSORS_FILE);
        let bytes = std::fs::read(&tpath).map_err(|e| ProbeError::io(&tpath, e))?;
        let terr = |reason: String| ProbeError::Tensors {
            path: tpath.display().to_string(),
            reason,
        };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| terr(e.to_string()))?;
        let mut got: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
        for name in ["direction", "bias", "mean", "std"] {
            let t = st.tensor(name).map_err(|e| terr(format!("{name}: {e}")))?;
            if t.dtype() != Dtype::F32 {
                return Err(terr(format!("{name}: dtype {:?}, expected F32", t.dtype())));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            got.insert(name, v);
        }
        let take = |got: &mut BTreeMap<&str, Vec<f32>>, n: &str| got.remove(n).unwrap_or_default();
        let direction = take(&mut got, "direction");
        let bias = take(&mut got, "bias");
        let mean = take(&mut got, "mean");
        let std = take(&mut got, "std");
        let d = direction.len();
        if bias.len() != 1 || mean.len() != d || std.len() != d || d != meta.n_features {
            return Err(terr(format!(
                "inconsistent shapes: direction {d}, bias {}, mean {}, std {}, probe.json n_features {}",
                bias.len(),
                mean.len(),
                std.len(),
                meta.n_features
            )));
        }
        if let Some(i) = direction
            .iter()
            .chain(&mean)
            .chain(&std)
            .position(|v| !v.is_finite())
        {
            return Err(terr(format!("non-finite value at flat index {i}")));
        }
        let probe = Probe {
            family: meta.family,
            standardizer: Standardizer { mean, std },
            direction,
            bias: bias[0],
            l2: meta.l2,
            shrinkage: meta.shrinkage,
        };
        Ok(ProbeArtifact { probe, meta })
    }
}

/// Writes to a temporary name and renames, so a crash never leaves a half-written file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| ProbeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ProbeError::io(path, e))
}
