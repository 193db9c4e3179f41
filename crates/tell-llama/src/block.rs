//! One decoder block: RMSNorm, grouped-query attention with RoPE, SwiGLU MLP.

use burn::tensor::{activation, backend::Backend, Tensor, TensorData};

use crate::config::LlamaConfig;
use crate::error::Result;
use crate::rope;
use crate::weights::{load_tensor, TensorSource};

/// Root-mean-square layer norm with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm<B: Backend> {
    weight: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Loads `{prefix}.weight`.
    pub fn load(
        w: &dyn TensorSource,
        prefix: &str,
        cfg: &LlamaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            weight: load_tensor(w, &format!("{prefix}.weight"), [cfg.hidden_size], device)?,
            eps: cfg.rms_norm_eps,
        })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let var = (x.clone() * x.clone()).mean_dim(2);
        // A true division: burn-ndarray's SIMD `recip` is an approximation (about 1e-5 relative)
        // used for some elements and not others, which broke padding invariance.
        x / (var + self.eps).sqrt() * self.weight.clone().unsqueeze::<3>()
    }
}

/// A bias-free linear map stored as `[in, out]` so that `x @ w` needs no transpose.
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    weight: Tensor<B, 2>,
}

impl<B: Backend> Linear<B> {
    /// Loads HF `[out, in]` weights named `names`, transposes them and stacks them along the
    /// output dimension, so that q/k/v (or gate/up) become one matrix product.
    pub fn load_fused(
        w: &dyn TensorSource,
        names: &[(String, usize)],
        d_in: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let d_out: usize = names.iter().map(|(_, o)| o).sum();
        let mut data = vec![0f32; d_in * d_out];
        let mut col = 0;
        for (name, out) in names {
            transpose_into(
                &mut data,
                d_out,
                col,
                &w.read_f32(name, &[*out, d_in])?,
                d_in,
            );
            col += out;
        }
        Ok(Self {
            weight: Tensor::from_data(TensorData::new(data, [d_in, d_out]), device),
        })
    }

    /// Builds the map from HF-layout `[out, in]` values, transposed on the host: a transposed
    /// view would be copied by every matrix product of burn-ndarray.
    pub fn from_out_in(values: &[f32], d_out: usize, d_in: usize, device: &B::Device) -> Self {
        let mut data = vec![0f32; d_in * d_out];
        transpose_into(&mut data, d_out, 0, values, d_in);
        Self {
            weight: Tensor::from_data(TensorData::new(data, [d_in, d_out]), device),
        }
    }

    /// `x @ w` over `[batch, seq, in]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let out = self.weight.dims()[1];
        x.reshape([b * t, d])
            .matmul(self.weight.clone())
            .reshape([b, t, out])
    }
}

/// Writes `src` (`[rows, d_in]`, HF `[out, in]`) transposed into columns `col..col + rows` of
/// `dst` (`[d_in, d_out]`).
fn transpose_into(dst: &mut [f32], d_out: usize, col: usize, src: &[f32], d_in: usize) {
    for (o, row) in src.chunks_exact(d_in).enumerate() {
        for (i, v) in row.iter().enumerate() {
            dst[i * d_out + col + o] = *v;
        }
    }
}

/// Grouped-query self-attention.
#[derive(Debug, Clone)]
pub struct Attention<B: Backend> {
    qkv: Linear<B>,
    o: Linear<B>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// Loads `{prefix}.{q,k,v,o}_proj.weight`.
    pub fn load(
        w: &dyn TensorSource,
        prefix: &str,
        cfg: &LlamaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let q = cfg.num_heads * cfg.head_dim;
        let kv = cfg.num_kv_heads * cfg.head_dim;
        let d = cfg.hidden_size;
        let qkv = Linear::load_fused(
            w,
            &[
                (format!("{prefix}.q_proj.weight"), q),
                (format!("{prefix}.k_proj.weight"), kv),
                (format!("{prefix}.v_proj.weight"), kv),
            ],
            d,
            device,
        )?;
        let o = Linear::load_fused(w, &[(format!("{prefix}.o_proj.weight"), d)], q, device)?;
        Ok(Self {
            qkv,
            o,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// Attends over `x` (`[batch, seq, d]`); `bias` is `[batch, 1, seq, past + seq]`, 0 where a
    /// query may see a key and a large negative number elsewhere. With a cache slot, the keys and
    /// values of earlier steps are prepended and the slot is updated.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        bias: &Tensor<B, 4>,
        cache: Option<&mut LayerCache<B>>,
    ) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let qkv = self.qkv.forward(x);
        let split = |from: usize, heads: usize| {
            qkv.clone()
                .slice([0..b, 0..t, from..from + heads * hd])
                .reshape([b, t, heads, hd])
                .swap_dims(1, 2)
        };
        let q = rope::apply(split(0, h), cos, sin);
        let k = rope::apply(split(h * hd, kvh), cos, sin);
        let v = split((h + kvh) * hd, kvh);
        let (k, v) = match cache {
            None => (k, v),
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
        };
        let (k, v) = (repeat_kv(k, h / kvh), repeat_kv(v, h / kvh));
        let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (hd as f64).sqrt()) + bias.clone();
        let probs = activation::softmax(scores, 3);
        let ctx = probs.matmul(v).swap_dims(1, 2).reshape([b, t, h * hd]);
        self.o.forward(ctx)
    }
}

/// Keys and values (`[batch, kv_heads, seq, head_dim]`, after RoPE) of one layer's earlier tokens.
pub type LayerCache<B> = Option<(Tensor<B, 4>, Tensor<B, 4>)>;

/// Repeats each key/value head `n` times so that every query head has its own copy.
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, n: usize) -> Tensor<B, 4> {
    if n == 1 {
        return x;
    }
    let [b, kvh, t, hd] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kvh, n, t, hd])
        .reshape([b, kvh * n, t, hd])
}

/// The SwiGLU feed-forward network.
#[derive(Debug, Clone)]
pub struct Mlp<B: Backend> {
    gate_up: Linear<B>,
    down: Linear<B>,
    intermediate: usize,
}

impl<B: Backend> Mlp<B> {
    /// Loads `{prefix}.{gate,up,down}_proj.weight`.
    pub fn load(
        w: &dyn TensorSource,
        prefix: &str,
        cfg: &LlamaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let gate_up = Linear::load_fused(
            w,
            &[
                (format!("{prefix}.gate_proj.weight"), i),
                (format!("{prefix}.up_proj.weight"), i),
            ],
            d,
            device,
        )?;
        let down = Linear::load_fused(w, &[(format!("{prefix}.down_proj.weight"), d)], i, device)?;
        Ok(Self {
            gate_up,
            down,
            intermediate: i,
        })
    }

    /// `down(silu(gate(x)) * up(x))`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let i = self.intermediate;
        let gu = self.gate_up.forward(x);
        let gate = gu.clone().slice([0..b, 0..t, 0..i]);
        let up = gu.slice([0..b, 0..t, i..2 * i]);
        self.down.forward(activation::silu(gate) * up)
    }
}

/// The values a block computes, for capture.
pub struct BlockOutput<B: Backend> {
    pub attn_out: Tensor<B, 3>,
    pub resid_mid: Tensor<B, 3>,
    pub mlp_out: Tensor<B, 3>,
    pub resid_post: Tensor<B, 3>,
}

/// One pre-norm decoder block.
#[derive(Debug, Clone)]
pub struct Block<B: Backend> {
    input_norm: RmsNorm<B>,
    attn: Attention<B>,
    post_attn_norm: RmsNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    /// Loads `model.layers.{layer}.*`.
    pub fn load(
        w: &dyn TensorSource,
        layer: usize,
        cfg: &LlamaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let p = format!("model.layers.{layer}");
        Ok(Self {
            input_norm: RmsNorm::load(w, &format!("{p}.input_layernorm"), cfg, device)?,
            attn: Attention::load(w, &format!("{p}.self_attn"), cfg, device)?,
            post_attn_norm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                cfg,
                device,
            )?,
            mlp: Mlp::load(w, &format!("{p}.mlp"), cfg, device)?,
        })
    }

    /// Runs the block on the residual stream `x`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        bias: &Tensor<B, 4>,
        cache: Option<&mut LayerCache<B>>,
    ) -> BlockOutput<B> {
        let attn_out = self
            .attn
            .forward(self.input_norm.forward(x.clone()), cos, sin, bias, cache);
        let resid_mid = x + attn_out.clone();
        let mlp_out = self
            .mlp
            .forward(self.post_attn_norm.forward(resid_mid.clone()));
        let resid_post = resid_mid.clone() + mlp_out.clone();
        BlockOutput {
            attn_out,
            resid_mid,
            mlp_out,
            resid_post,
        }
    }
}
