//! Rotary position embeddings in Hugging Face's rotate-half layout, with `llama3` scaling.

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};

use crate::config::{LlamaConfig, RopeScaling};

/// Inverse frequencies of RoPE, one per pair of head dimensions.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    head_dim: usize,
}

impl Rope {
    /// Computes the inverse frequencies for a config, in f32 as transformers does.
    pub fn new(cfg: &LlamaConfig) -> Self {
        let dim = cfg.head_dim;
        let base = cfg.rope_theta as f32;
        let mut inv_freq: Vec<f32> = (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
            .collect();
        if let RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } = cfg.rope_scaling
        {
            let (factor, low, high) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
            );
            let old_len = original_max_position_embeddings as f32;
            let low_freq_wavelen = old_len / low;
            let high_freq_wavelen = old_len / high;
            for f in &mut inv_freq {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                // Long wavelengths are stretched by `factor`, short ones kept, and the band between
                // is interpolated smoothly (Meta's reference, as in transformers).
                *f = if wavelen < high_freq_wavelen {
                    *f
                } else if wavelen > low_freq_wavelen {
                    *f / factor
                } else {
                    let smooth = (old_len / wavelen - low) / (high - low);
                    (1.0 - smooth) * *f / factor + smooth * *f
                };
            }
        }
        Self {
            inv_freq,
            head_dim: dim,
        }
    }

    /// The inverse frequencies.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// `cos` and `sin` tables of shape `[batch, 1, seq, head_dim]` for the given positions
    /// (`positions[b * seq + t]`), in f32 whatever the device's float type.
    pub fn tables<B: Backend>(
        &self,
        positions: &[usize],
        batch: usize,
        seq: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let half = self.head_dim / 2;
        let mut cos = Vec::with_capacity(positions.len() * self.head_dim);
        let mut sin = Vec::with_capacity(positions.len() * self.head_dim);
        for &p in positions {
            let row_start = cos.len();
            for &f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
            // rotate-half layout: the same angles for both halves of the head.
            cos.extend_from_within(row_start..row_start + half);
            sin.extend_from_within(row_start..row_start + half);
        }
        let shape = [batch, 1, seq, self.head_dim];
        (
            Tensor::from_data(TensorData::new(cos, shape), (device, DType::F32)),
            Tensor::from_data(TensorData::new(sin, shape), (device, DType::F32)),
        )
    }
}

/// Applies RoPE to `x` of shape `[batch, heads, seq, head_dim]`, computing in the tables' type
/// (f32) and returning `x`'s.
pub fn apply<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, t, d] = x.dims();
    let dtype = x.dtype();
    let x = x.cast(cos.dtype());
    let half = d / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, half..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    (x * cos.clone() + rotated * sin.clone()).cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use std::path::Path;

    fn cfg(scaling: &str) -> LlamaConfig {
        let text = format!(
            r#"{{"vocab_size": 8, "hidden_size": 256, "intermediate_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 500000.0,
                "rope_scaling": {scaling}}}"#
        );
        LlamaConfig::from_json_str(&text, Path::new("config.json")).unwrap()
    }

    #[test]
    fn llama3_scaling_matches_meta_reference_values() {
        // LLaMA 3.1's scaling on head_dim 128: the highest frequencies are untouched, the lowest
        // are divided by 8, and the band between is blended.
        let plain = Rope::new(&cfg("null"));
        let scaled = Rope::new(&cfg(
            r#"{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#,
        ));
        let (p, s) = (plain.inv_freq(), scaled.inv_freq());
        assert_eq!(p.len(), 64);
        assert_eq!(p[0], 1.0);
        assert_eq!(s[0], 1.0);
        assert!((s[63] - p[63] / 8.0).abs() <= f32::EPSILON * p[63]);
        let blended = s
            .iter()
            .zip(p)
            .filter(|(s, p)| **s < **p && **s > **p / 8.0)
            .count();
        assert!(blended > 0, "some frequencies lie in the blended band");
    }
}
