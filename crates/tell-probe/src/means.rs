//! Difference of class means in raw activation space, written as a steering vector.
//!
//! Unlike the `diffmean` probe family (fit on standardised features, for classification), this
//! vector is `mean(positive) - mean(negative)` of the activations as stored: adding it once moves
//! the negative class's mean onto the positive class's, which is the scale steering work uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::error::{ProbeError, Result};
use crate::store_io::{join_labels, layer_keys, load_finite, open_pooled, read_labels};

/// What `tell probe means` computes.
#[derive(Debug, Clone)]
pub struct MeansConfig {
    /// Activation store with one row per record.
    pub acts: PathBuf,
    /// Labels CSV.
    pub labels: PathBuf,
    /// Column of the labels CSV that holds the label.
    pub label: String,
    /// Label value that means positive.
    pub positive: Option<String>,
    /// Columns joining the labels CSV to the store's records.
    pub join_on: Vec<String>,
    /// Store site name (e.g. `hook_resid_post`).
    pub site: String,
    /// Block index.
    pub layer: u32,
    /// Leave out records without a label (default: refuse them).
    pub skip_unlabelled: bool,
    /// The `.safetensors` file to write.
    pub out: PathBuf,
}

/// The difference of means and what it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanDifference {
    /// `mean(positive) - mean(negative)`.
    pub direction: Vec<f32>,
    /// Mean of the positive records.
    pub mean_positive: Vec<f32>,
    /// Mean of the negative records.
    pub mean_negative: Vec<f32>,
    /// Positive records.
    pub n_positive: usize,
    /// Negative records.
    pub n_negative: usize,
}

impl MeanDifference {
    /// L2 norm of the direction.
    pub fn norm(&self) -> f64 {
        self.direction
            .iter()
            .map(|&v| v as f64 * v as f64)
            .sum::<f64>()
            .sqrt()
    }
}

/// Class means of `rows` (row-major, width `d`) accumulated in f64.
pub fn mean_difference(rows: &[f32], d: usize, labels: &[bool]) -> MeanDifference {
    let (mut sp, mut sn) = (vec![0.0f64; d], vec![0.0f64; d]);
    let (mut np, mut nn) = (0usize, 0usize);
    for (row, &l) in rows.chunks_exact(d).zip(labels) {
        let (s, n) = if l {
            (&mut sp, &mut np)
        } else {
            (&mut sn, &mut nn)
        };
        *n += 1;
        s.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
    }
    let mp: Vec<f32> = sp.iter().map(|v| (v / np.max(1) as f64) as f32).collect();
    let mn: Vec<f32> = sn.iter().map(|v| (v / nn.max(1) as f64) as f32).collect();
    MeanDifference {
        direction: mp.iter().zip(&mn).map(|(p, n)| p - n).collect(),
        mean_positive: mp,
        mean_negative: mn,
        n_positive: np,
        n_negative: nn,
    }
}

/// Joins the store with the labels, computes the difference of means at one site and layer and
/// writes it (tensors `direction`, `mean_positive`, `mean_negative`; metadata `site`, `layer`,
/// counts and the label definition, which `--edit ... vector=FILE` reads).
pub fn means_from_store(cfg: &MeansConfig) -> Result<MeanDifference> {
    let store = open_pooled(&cfg.acts)?;
    let records = store.records()?;
    let site = cfg.site.clone();
    let keys = layer_keys(
        &store,
        Some(std::slice::from_ref(&site)),
        Some(&[cfg.layer]),
    )?;
    let key = &keys[0];
    let table = read_labels(
        &cfg.labels,
        &cfg.join_on,
        &cfg.label,
        cfg.positive.as_deref(),
    )?;
    let rows: Vec<usize> = (0..records.len())
        .filter(|&i| !cfg.skip_unlabelled || table.get(&records[i].meta).is_some())
        .collect();
    let recs: Vec<&tell_store::RecordRow> = rows.iter().map(|&i| &records[i]).collect();
    let labels = join_labels(&cfg.acts, &table, &recs)?;
    let n_pos = labels.iter().filter(|&&l| l).count();
    if n_pos == 0 || n_pos == labels.len() {
        return Err(ProbeError::OneClass {
            n_pos,
            n_neg: labels.len() - n_pos,
            context: format!("label {} over {} records", table.definition(), labels.len()),
        });
    }
    let m = load_finite(&store, key, &records)?;
    let x = crate::store_io::gather(&m, &rows);
    let diff = mean_difference(&x, m.cols, &labels);
    let full_site = format!("blocks.{}.{}", cfg.layer, site);
    let mut info = HashMap::new();
    info.insert("site".to_string(), full_site);
    info.insert("layer".to_string(), cfg.layer.to_string());
    info.insert("n_positive".to_string(), diff.n_positive.to_string());
    info.insert("n_negative".to_string(), diff.n_negative.to_string());
    info.insert("label".to_string(), table.definition());
    info.insert("store".to_string(), cfg.acts.display().to_string());
    info.insert(
        "direction".to_string(),
        "mean(positive) - mean(negative) of the stored activations (raw space, not standardised)"
            .to_string(),
    );
    write_vectors(
        &cfg.out,
        &[
            ("direction", &diff.direction),
            ("mean_positive", &diff.mean_positive),
            ("mean_negative", &diff.mean_negative),
        ],
        info,
    )?;
    Ok(diff)
}

fn write_vectors(
    path: &Path,
    tensors: &[(&str, &[f32])],
    info: HashMap<String, String>,
) -> Result<()> {
    let terr = |reason: String| ProbeError::Tensors {
        path: path.display().to_string(),
        reason,
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::new();
    for ((name, v), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, vec![v.len()], b)
            .map_err(|e| terr(format!("{name}: {e}")))?;
        views.push((name.to_string(), view));
    }
    let data = safetensors::serialize(views, Some(info)).map_err(|e| terr(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ProbeError::io(dir, e))?;
    }
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, &data).map_err(|e| ProbeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ProbeError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_difference_is_of_raw_means() {
        let rows = [1.0, 10.0, 3.0, 20.0, 0.0, 0.0, 2.0, -4.0];
        let d = mean_difference(&rows, 2, &[true, true, false, false]);
        assert_eq!(d.mean_positive, [2.0, 15.0]);
        assert_eq!(d.mean_negative, [1.0, -2.0]);
        assert_eq!(d.direction, [1.0, 17.0]);
        assert_eq!((d.n_positive, d.n_negative), (2, 2));
    }
}
