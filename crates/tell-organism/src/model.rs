//! The organism's network as burn Modules for training: a LLaMA decoder (RMSNorm, rotate-half
//! RoPE as in HF, grouped-query attention, SwiGLU), the same computation tell-llama runs on the
//! exported checkpoint. RoPE tables come from tell-llama's own [`Rope`], so both sides agree.
//!
//! Linear weights are held `[in, out]` (`x @ w`); the export transposes them to HF's `[out, in]`.

use burn::module::{Module, Param};
use burn::tensor::{activation, backend::Backend, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tell_llama::rope::{self, Rope};
use tell_llama::{LlamaConfig, RopeScaling};

use crate::rng::Rng;

/// Added to the attention score of a future key (as tell-llama does for masked keys).
const MASKED: f32 = -1.0e30;

/// The architecture of the organism.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_kv_heads: usize,
    /// Positions the model is configured for.
    pub max_position_embeddings: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            hidden_size: 128,
            intermediate_size: 352,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 2,
            max_position_embeddings: 512,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
        }
    }
}

impl ModelSpec {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// The tell-llama config of this architecture with `vocab_size` tokens and `eos` as EOS.
    pub fn llama_config(&self, vocab_size: usize, eos: u32) -> LlamaConfig {
        LlamaConfig {
            vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_layers,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim(),
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            rope_scaling: RopeScaling::None,
            tie_word_embeddings: false,
            max_position_embeddings: self.max_position_embeddings,
            bos_token_id: None,
            eos_token_ids: vec![eos],
        }
    }

    /// Checks that the heads divide the width and the query heads group the key/value heads.
    pub fn check(&self) -> Result<(), String> {
        let s = self;
        if s.hidden_size == 0 || s.intermediate_size == 0 || s.num_layers == 0 {
            return Err("hidden_size, intermediate_size and num_layers must be positive".into());
        }
        if s.num_heads == 0 || s.num_kv_heads == 0 || !s.num_heads.is_multiple_of(s.num_kv_heads) {
            return Err(format!(
                "num_heads {} must be a positive multiple of num_kv_heads {}",
                s.num_heads, s.num_kv_heads
            ));
        }
        if !s.hidden_size.is_multiple_of(s.num_heads) || !s.head_dim().is_multiple_of(2) {
            return Err(format!(
                "hidden_size {} must split into {} heads of even width",
                s.hidden_size, s.num_heads
            ));
        }
        Ok(())
    }
}

/// Root-mean-square norm with a learned scale.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Scale, `[d]`.
    pub weight: Param<Tensor<B, 1>>,
    eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    fn new(d: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([d], device)),
            eps,
        }
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let var = (x.clone() * x.clone()).mean_dim(2);
        x / (var + self.eps).sqrt() * self.weight.val().unsqueeze::<3>()
    }
}

/// `[in, out]` weights drawn from N(0, std^2).
fn linear<B: Backend>(
    rng: &mut Rng,
    d_in: usize,
    d_out: usize,
    std: f64,
    device: &B::Device,
) -> Param<Tensor<B, 2>> {
    let values: Vec<f32> = (0..d_in * d_out)
        .map(|_| (rng.normal() * std) as f32)
        .collect();
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values, [d_in, d_out]),
        device,
    ))
}

/// `x @ w` over `[batch, seq, in]`.
fn apply<B: Backend>(x: Tensor<B, 3>, w: &Param<Tensor<B, 2>>) -> Tensor<B, 3> {
    let [b, t, d] = x.dims();
    let w = w.val();
    let out = w.dims()[1];
    x.reshape([b * t, d]).matmul(w).reshape([b, t, out])
}

/// Grouped-query causal self-attention.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[d, heads * head_dim]`.
    pub q: Param<Tensor<B, 2>>,
    /// `[d, kv_heads * head_dim]`.
    pub k: Param<Tensor<B, 2>>,
    /// `[d, kv_heads * head_dim]`.
    pub v: Param<Tensor<B, 2>>,
    /// `[heads * head_dim, d]`.
    pub o: Param<Tensor<B, 2>>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        bias: &Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let heads = |w: &Param<Tensor<B, 2>>, n: usize| {
            apply(x.clone(), w).reshape([b, t, n, hd]).swap_dims(1, 2)
        };
        let q = rope::apply(heads(&self.q, h), cos, sin);
        let k = repeat_kv(rope::apply(heads(&self.k, kvh), cos, sin), h / kvh);
        let v = repeat_kv(heads(&self.v, kvh), h / kvh);
        let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (hd as f64).sqrt()) + bias.clone();
        let probs = activation::softmax(scores, 3);
        let ctx = probs.matmul(v).swap_dims(1, 2).reshape([b, t, h * hd]);
        apply(ctx, &self.o)
    }
}

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
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[d, intermediate]`.
    pub gate: Param<Tensor<B, 2>>,
    /// `[d, intermediate]`.
    pub up: Param<Tensor<B, 2>>,
    /// `[intermediate, d]`.
    pub down: Param<Tensor<B, 2>>,
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = activation::silu(apply(x.clone(), &self.gate));
        apply(gate * apply(x, &self.up), &self.down)
    }
}

/// One pre-norm decoder block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// Norm before attention.
    pub input_norm: RmsNorm<B>,
    /// Attention.
    pub attn: Attention<B>,
    /// Norm before the MLP.
    pub post_attn_norm: RmsNorm<B>,
    /// MLP.
    pub mlp: Mlp<B>,
}

/// The whole decoder.
#[derive(Module, Debug)]
pub struct Organism<B: Backend> {
    /// Token embeddings, `[vocab, d]`.
    pub embed: Param<Tensor<B, 2>>,
    /// Decoder blocks.
    pub blocks: Vec<Block<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
    /// LM head, `[d, vocab]`.
    pub lm_head: Param<Tensor<B, 2>>,
}

impl<B: Backend> Organism<B> {
    /// A freshly initialised model: weights N(0, 1/fan_in), output projections of each block
    /// further scaled by 1/sqrt(2 * layers), embeddings N(0, 1), norms 1; drawn from `seed`.
    pub fn init(spec: &ModelSpec, vocab: usize, seed: u64, device: &B::Device) -> Self {
        let mut rng = Rng::named(seed, "organism-init");
        let d = spec.hidden_size;
        let (q, kv) = (
            spec.num_heads * spec.head_dim(),
            spec.num_kv_heads * spec.head_dim(),
        );
        let i = spec.intermediate_size;
        let fan = |n: usize| 1.0 / (n as f64).sqrt();
        let resid = 1.0 / (2.0 * spec.num_layers as f64).sqrt();
        let embed = linear(&mut rng, vocab, d, 1.0, device);
        let blocks = (0..spec.num_layers)
            .map(|_| Block {
                input_norm: RmsNorm::new(d, spec.rms_norm_eps, device),
                attn: Attention {
                    q: linear(&mut rng, d, q, fan(d), device),
                    k: linear(&mut rng, d, kv, fan(d), device),
                    v: linear(&mut rng, d, kv, fan(d), device),
                    o: linear(&mut rng, q, d, fan(q) * resid, device),
                    heads: spec.num_heads,
                    kv_heads: spec.num_kv_heads,
                    head_dim: spec.head_dim(),
                },
                post_attn_norm: RmsNorm::new(d, spec.rms_norm_eps, device),
                mlp: Mlp {
                    gate: linear(&mut rng, d, i, fan(d), device),
                    up: linear(&mut rng, d, i, fan(d), device),
                    down: linear(&mut rng, i, d, fan(i) * resid, device),
                },
            })
            .collect();
        Self {
            embed,
            blocks,
            norm: RmsNorm::new(d, spec.rms_norm_eps, device),
            lm_head: linear(&mut rng, d, vocab, fan(d), device),
        }
    }

    /// Logits `[batch, seq, vocab]` of right-padded token rows `[batch, seq]` (positions
    /// `0..seq`, causal attention: padding after a row's end never reaches its real tokens).
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, rope: &Rope) -> Tensor<B, 3> {
        let [b, t] = tokens.dims();
        let device = tokens.device();
        let d = self.embed.dims()[1];
        let x = self
            .embed
            .val()
            .select(0, tokens.reshape([b * t]))
            .reshape([b, t, d]);
        let positions: Vec<usize> = (0..b).flat_map(|_| 0..t).collect();
        let (cos, sin) = rope.tables::<B>(&positions, b, t, &device);
        let bias: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { MASKED }))
            .collect();
        let bias = Tensor::<B, 4>::from_data(TensorData::new(bias, [1, 1, t, t]), &device);
        let mut x = x;
        for block in &self.blocks {
            let attn = block
                .attn
                .forward(block.input_norm.forward(x.clone()), &cos, &sin, &bias);
            let mid = x + attn;
            x = mid.clone() + block.mlp.forward(block.post_attn_norm.forward(mid));
        }
        apply(self.norm.forward(x), &self.lm_head)
    }
}
