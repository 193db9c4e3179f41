//! One decoder block: RMSNorm, grouped-query attention with RoPE, SwiGLU MLP.

use burn::tensor::{activation, backend::Backend, DType, Int, Tensor};

use crate::config::LlamaConfig;
use crate::cpu::{self, HostF32};
use crate::error::Result;
use crate::gemm;
pub use crate::linear::Linear;
use crate::rope;
use crate::site::Hook;
use crate::weights::{load_tensor, TensorSource};

/// Root-mean-square layer norm with a learned scale, computed in f32 whatever the model's float
/// type (its weight is held in f32).
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
        if let (Some(xh), Some(w)) = (HostF32::of(&x), HostF32::of(&self.weight)) {
            let y = cpu::rms_norm(xh.values(), w.values(), self.eps as f32);
            return cpu::tensor(y, x.dims(), &x.device());
        }
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let var = (x.clone() * x.clone()).mean_dim(2);
        // A true division: burn-ndarray's SIMD `recip` is an approximation (about 1e-5 relative)
        // used for some elements and not others, which broke padding invariance.
        (x / (var + self.eps).sqrt() * self.weight.clone().unsqueeze::<3>()).cast(dtype)
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
    /// Loads `{prefix}.{q,k,v,o}_proj.weight` (as `dtype` where the backend holds the model's
    /// float type).
    pub fn load(
        w: &dyn TensorSource,
        prefix: &str,
        cfg: &LlamaConfig,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self> {
        let q = cfg.num_heads * cfg.head_dim;
        let kv = cfg.num_kv_heads * cfg.head_dim;
        let d = cfg.hidden_size;
        let qkv = Linear::load_fused_as(
            w,
            &[
                (format!("{prefix}.q_proj.weight"), q),
                (format!("{prefix}.k_proj.weight"), kv),
                (format!("{prefix}.v_proj.weight"), kv),
            ],
            d,
            device,
            dtype,
        )?;
        let o = Linear::load_fused_as(
            w,
            &[(format!("{prefix}.o_proj.weight"), d)],
            q,
            device,
            dtype,
        )?;
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
        let qkv = self.qkv.forward(x);
        let host = (HostF32::of(&qkv), [cos, sin, bias].map(HostF32::of));
        let ctx = match host {
            (Some(qkv_h), [Some(cos), Some(sin), Some(bias)]) => {
                let [b, t, _] = qkv.dims();
                let device = qkv.device();
                drop(qkv);
                let values = [qkv_h.values(), cos.values(), sin.values(), bias.values()];
                self.context_host(values, b, t, cache, &device)
            }
            _ => self.context(qkv, cos, sin, bias, cache),
        };
        self.o.forward(ctx)
    }

    fn heads(&self, batch: usize, seq: usize) -> cpu::Heads {
        cpu::Heads {
            batch,
            seq,
            heads: self.num_heads,
            kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
        }
    }

    fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// The attention context (`[batch, seq, heads * head_dim]`) with burn's ops (and cuBLAS for
    /// the two products on CUDA). RoPE and the softmax compute in f32 whatever the model's float
    /// type; the scores come out of their product in f32, the probabilities go into theirs in
    /// the model's type.
    fn context(
        &self,
        qkv: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        bias: &Tensor<B, 4>,
        cache: Option<&mut LayerCache<B>>,
    ) -> Tensor<B, 3> {
        let [b, t, _] = qkv.dims();
        let dtype = qkv.dtype();
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
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
            Some(slot) => slot.append(k, v),
        };
        // Grouped-query attention without copying keys and values for every query head: the
        // `groups` query heads that share a key/value head (heads `kv * groups ..`, as in
        // transformers' `repeat_kv`) are stacked along the query axis of that head.
        let groups = h / kvh;
        let s = k.dims()[2];
        let q = q.reshape([b, kvh, groups * t, hd]);
        let scores = gemm::matmul(q, k.swap_dims(2, 3), DType::F32) * self.scale();
        let scores = scores.reshape([b, kvh, groups, t, s])
            + bias.clone().cast(DType::F32).unsqueeze_dim::<5>(1);
        let probs = activation::softmax(scores, 4)
            .reshape([b, kvh, groups * t, s])
            .cast(dtype);
        gemm::matmul(probs, v, dtype)
            .reshape([b, h, t, hd])
            .swap_dims(1, 2)
            .reshape([b, t, h * hd])
    }

    /// [`Self::context`] on host memory (the `flex` backend), from the values of the fused q/k/v
    /// product and of `cos`, `sin` and `bias`; the cache keeps its keys and values on the host.
    fn context_host(
        &self,
        [qkv, cos, sin, bias]: [&[f32]; 4],
        b: usize,
        t: usize,
        cache: Option<&mut LayerCache<B>>,
        device: &B::Device,
    ) -> Tensor<B, 3> {
        let (h, hd) = (self.num_heads, self.head_dim);
        let heads = self.heads(b, t);
        let (q, k, v) = cpu::rope_split(qkv, heads, cos, sin);
        let scale = self.scale() as f32;
        // Without a cache (a plain forward pass) the keys and values go through a scratch one, so
        // that attention always reads the cache's layout.
        let mut scratch = LayerCache::default();
        let slot = cache.unwrap_or(&mut scratch);
        let (kt, v, cap, len) = slot.append_host(&k, &v, heads);
        let ctx = cpu::attend(&q, kt, v, cap, len, bias, heads, scale);
        cpu::tensor(ctx, [b, t, h * hd], device)
    }
}

/// Positions a layer cache grows by when it is full: a decoding step writes its keys and values
/// into room left in the buffers instead of copying the whole cache into a new one.
const CACHE_CHUNK: usize = 128;

/// Keys and values (after RoPE) of one layer's earlier tokens, in buffers
/// `[batch, kv_heads, capacity, head_dim]` whose first `len` positions are filled.
#[derive(Clone)]
pub struct LayerCache<B: Backend> {
    store: Option<KvStore<B>>,
    len: usize,
}

/// Where a layer cache keeps its buffers.
#[derive(Clone)]
enum KvStore<B: Backend> {
    /// Tensors of the backend (the generic path).
    Device { k: Tensor<B, 4>, v: Tensor<B, 4> },
    /// Host memory (the `flex` path: written in place, read by [`cpu::attend`]). `shape` is
    /// `[batch, kv_heads, capacity, head_dim]`; `v` has that layout, and `k` is stored transposed,
    /// `[batch, kv_heads, head_dim, capacity]`, so that the scores of consecutive keys are SIMD
    /// lanes.
    Host {
        k: Vec<f32>,
        v: Vec<f32>,
        shape: [usize; 4],
    },
}

/// Host keys `[.., head_dim, cap]` (as [`KvStore::Host`] holds them) as a backend tensor
/// `[.., cap, head_dim]` (a transposed view).
fn host_keys<B: Backend>(k: Vec<f32>, shape: [usize; 4], device: &B::Device) -> Tensor<B, 4> {
    let [b, h, cap, d] = shape;
    cpu::tensor::<B, 4>(k, [b, h, d, cap], device).swap_dims(2, 3)
}

/// Each `[rows, cols]` block of `src` transposed into the first `rows` columns of the matching
/// `[cols, stride]` block of `dst`.
fn transpose_blocks(dst: &mut [f32], stride: usize, src: &[f32], rows: usize, cols: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    for (d, s) in dst
        .chunks_exact_mut(cols * stride)
        .zip(src.chunks_exact(rows * cols))
    {
        for (r, row) in s.chunks_exact(cols).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                d[c * stride + r] = x;
            }
        }
    }
}

impl<B: Backend> std::fmt::Debug for LayerCache<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, shape) = match &self.store {
            None => ("empty", None),
            Some(KvStore::Device { k, .. }) => ("device", Some(k.dims())),
            Some(KvStore::Host { shape, .. }) => ("host", Some(*shape)),
        };
        f.debug_struct("LayerCache")
            .field("store", &kind)
            .field("shape", &shape)
            .field("len", &self.len)
            .finish()
    }
}

impl<B: Backend> Default for LayerCache<B> {
    fn default() -> Self {
        Self {
            store: None,
            len: 0,
        }
    }
}

impl<B: Backend> LayerCache<B> {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `k` and `v` (`[batch, kv_heads, new, head_dim]`) and returns the keys and values
    /// of every position so far (views of the buffers).
    pub fn append(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, t, d] = k.dims();
        let (start, end) = (self.len, self.len + t);
        let grow = |old: Option<Tensor<B, 4>>| {
            let cap = end.next_multiple_of(CACHE_CHUNK);
            let buf = Tensor::zeros([b, h, cap, d], (&k.device(), k.dtype()));
            match old {
                Some(old) => buf.slice_assign(
                    [0..b, 0..h, 0..start, 0..d],
                    old.slice([0..b, 0..h, 0..start, 0..d]),
                ),
                None => buf,
            }
        };
        let (kb, vb) = match self.store.take() {
            Some(KvStore::Device { k: kb, v: vb }) if kb.dims()[2] >= end => (kb, vb),
            Some(KvStore::Device { k: kb, v: vb }) => (grow(Some(kb)), grow(Some(vb))),
            Some(KvStore::Host {
                k: kh,
                v: vh,
                shape,
            }) => {
                let device = k.device();
                let kh = host_keys::<B>(kh, shape, &device);
                let vh = cpu::tensor::<B, 4>(vh, shape, &device);
                (grow(Some(kh)), grow(Some(vh)))
            }
            None => (grow(None), grow(None)),
        };
        let kb = kb.slice_assign([0..b, 0..h, start..end, 0..d], k);
        let vb = vb.slice_assign([0..b, 0..h, start..end, 0..d], v);
        self.store = Some(KvStore::Device {
            k: kb.clone(),
            v: vb.clone(),
        });
        self.len = end;
        (
            kb.slice([0..b, 0..h, 0..end, 0..d]),
            vb.slice([0..b, 0..h, 0..end, 0..d]),
        )
    }

    /// Appends `k` and `v` (`[batch, kv_heads, seq, head_dim]` on the host) in place and returns
    /// the transposed key buffer (`[batch, kv_heads, head_dim, capacity]`), the value buffer
    /// (`[batch, kv_heads, capacity, head_dim]`), the capacity and the number of filled positions.
    pub fn append_host(
        &mut self,
        k: &[f32],
        v: &[f32],
        s: cpu::Heads,
    ) -> (&[f32], &[f32], usize, usize) {
        let (b, h, t, d) = (s.batch, s.kv_heads, s.seq, s.head_dim);
        let (start, end) = (self.len, self.len + t);
        let fits = matches!(&self.store, Some(KvStore::Host { shape, .. }) if shape[2] >= end);
        if !fits {
            let cap = end.next_multiple_of(CACHE_CHUNK);
            let (mut kn, mut vn) = (vec![0f32; b * h * cap * d], vec![0f32; b * h * cap * d]);
            match self.store.take() {
                Some(KvStore::Host { k, v, shape }) => {
                    let old = shape[2];
                    for (nb, ob) in kn.chunks_exact_mut(cap).zip(k.chunks_exact(old)) {
                        nb[..start].copy_from_slice(&ob[..start]);
                    }
                    for (nb, ob) in vn.chunks_exact_mut(cap * d).zip(v.chunks_exact(old * d)) {
                        nb[..start * d].copy_from_slice(&ob[..start * d]);
                    }
                }
                Some(KvStore::Device { k, v }) => {
                    // Left by a change of the batch (`shift`, `concat_rows`): back to the host.
                    let host = |x: Tensor<B, 4>| {
                        x.slice([0..b, 0..h, 0..start, 0..d])
                            .into_data()
                            .convert::<f32>()
                            .to_vec::<f32>()
                            .expect("f32 cache")
                    };
                    transpose_blocks(&mut kn, cap, &host(k), start, d);
                    let v = host(v);
                    if start > 0 {
                        for (nb, ob) in vn.chunks_exact_mut(cap * d).zip(v.chunks_exact(start * d))
                        {
                            nb[..start * d].copy_from_slice(ob);
                        }
                    }
                }
                None => {}
            }
            self.store = Some(KvStore::Host {
                k: kn,
                v: vn,
                shape: [b, h, cap, d],
            });
        }
        let Some(KvStore::Host {
            k: kb,
            v: vb,
            shape,
        }) = &mut self.store
        else {
            unreachable!("the host store was just made");
        };
        let cap = shape[2];
        if t > 0 && d > 0 {
            // Keys go in transposed: position `start + i` of row `c` of each `[d, cap]` block.
            for (nb, ob) in kb.chunks_exact_mut(d * cap).zip(k.chunks_exact(t * d)) {
                for (i, key) in ob.chunks_exact(d).enumerate() {
                    for (c, &x) in key.iter().enumerate() {
                        nb[c * cap + start + i] = x;
                    }
                }
            }
            for (nb, ob) in vb.chunks_exact_mut(cap * d).zip(v.chunks_exact(t * d)) {
                nb[start * d..end * d].copy_from_slice(ob);
            }
        }
        self.len = end;
        (kb, vb, cap, end)
    }

    /// The filled keys and values, `[batch, kv_heads, len, head_dim]`, as backend tensors.
    fn filled(&self, device: &B::Device) -> Option<(Tensor<B, 4>, Tensor<B, 4>)> {
        let len = self.len;
        let view = |x: Tensor<B, 4>| {
            let [b, h, _, d] = x.dims();
            x.slice([0..b, 0..h, 0..len, 0..d])
        };
        match &self.store {
            Some(KvStore::Device { k, v }) => Some((view(k.clone()), view(v.clone()))),
            Some(KvStore::Host { k, v, shape }) => Some((
                view(host_keys::<B>(k.clone(), *shape, device)),
                view(cpu::tensor::<B, 4>(v.clone(), *shape, device)),
            )),
            None => None,
        }
    }

    /// Rewrites the positions as `pad` masked (zero) positions followed by this cache's positions
    /// from `skip` on: the padding a row gets when it joins a longer batch, or the common padding
    /// dropped when the rows that needed it have left. Rare (a refill or a finish), so it works
    /// on backend tensors and leaves no spare room; the next append makes some.
    pub fn shift(&mut self, pad: usize, skip: usize, device: &B::Device) {
        if pad == 0 && skip == 0 {
            return;
        }
        let Some((k, v)) = self.filled(device) else {
            return;
        };
        let [b, h, len, d] = k.dims();
        let skip = skip.min(len);
        let redo = |x: Tensor<B, 4>| {
            let kept = x.narrow(2, skip, len - skip);
            if pad == 0 {
                kept
            } else {
                let zeros = Tensor::zeros([b, h, pad, d], (device, kept.dtype()));
                Tensor::cat(vec![zeros, kept], 2)
            }
        };
        self.store = Some(KvStore::Device {
            k: redo(k),
            v: redo(v),
        });
        self.len = len - skip + pad;
    }

    /// Puts the rows of `other` after these rows; both hold the same number of positions.
    pub fn concat_rows(&mut self, other: &LayerCache<B>, device: &B::Device) {
        if let (Some((k, v)), Some((k2, v2))) = (self.filled(device), other.filled(device)) {
            self.store = Some(KvStore::Device {
                k: Tensor::cat(vec![k, k2], 0),
                v: Tensor::cat(vec![v, v2], 0),
            });
        }
    }

    /// Keeps the rows `rows` of the batch, in that order (`idx` holds the same indices).
    pub fn select_rows(&mut self, rows: &[usize], idx: &Tensor<B, 1, Int>) {
        match &mut self.store {
            Some(KvStore::Device { k, v }) => {
                *k = k.clone().select(0, idx.clone());
                *v = v.clone().select(0, idx.clone());
            }
            Some(KvStore::Host { k, v, shape }) => {
                let block = shape[1] * shape[2] * shape[3];
                for x in [k, v] {
                    *x = rows
                        .iter()
                        .flat_map(|&r| &x[r * block..(r + 1) * block])
                        .copied()
                        .collect();
                }
                shape[0] = rows.len();
            }
            None => {}
        }
    }
}

/// The SwiGLU feed-forward network.
#[derive(Debug, Clone)]
pub struct Mlp<B: Backend> {
    gate_up: Linear<B>,
    down: Linear<B>,
    intermediate: usize,
}

impl<B: Backend> Mlp<B> {
    /// Loads `{prefix}.{gate,up,down}_proj.weight` (as `dtype` where the backend holds the
    /// model's float type).
    pub fn load(
        w: &dyn TensorSource,
        prefix: &str,
        cfg: &LlamaConfig,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let gate_up = Linear::load_fused_as(
            w,
            &[
                (format!("{prefix}.gate_proj.weight"), i),
                (format!("{prefix}.up_proj.weight"), i),
            ],
            d,
            device,
            dtype,
        )?;
        let down = Linear::load_fused_as(
            w,
            &[(format!("{prefix}.down_proj.weight"), d)],
            i,
            device,
            dtype,
        )?;
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
        let x = match self.gate_up.forward_swiglu(x) {
            Ok(act) => return self.down.forward(act),
            Err(x) => x,
        };
        let gu = self.gate_up.forward(x);
        if let Some(host) = HostF32::of(&gu) {
            let act = cpu::swiglu(host.values(), b * t, i);
            return self.down.forward(cpu::tensor(act, [b, t, i], &gu.device()));
        }
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
    /// Loads `model.layers.{layer}.*` (products' weights as `dtype` where the backend holds the
    /// model's float type; norms in f32).
    pub fn load(
        w: &dyn TensorSource,
        layer: usize,
        cfg: &LlamaConfig,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self> {
        let p = format!("model.layers.{layer}");
        Ok(Self {
            input_norm: RmsNorm::load(w, &format!("{p}.input_layernorm"), cfg, device)?,
            attn: Attention::load(w, &format!("{p}.self_attn"), cfg, device, dtype)?,
            post_attn_norm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                cfg,
                device,
            )?,
            mlp: Mlp::load(w, &format!("{p}.mlp"), cfg, device, dtype)?,
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
        self.forward_edited(x, cos, sin, bias, cache, &mut |_, value| value)
    }

    /// Like [`Self::forward`], with `edit` called on each value inside the block (attention out,
    /// resid_mid, MLP out, resid_post) before anything downstream reads it.
    pub fn forward_edited(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        bias: &Tensor<B, 4>,
        cache: Option<&mut LayerCache<B>>,
        edit: &mut dyn FnMut(Hook, Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> BlockOutput<B> {
        let attn_out = self
            .attn
            .forward(self.input_norm.forward(x.clone()), cos, sin, bias, cache);
        let attn_out = edit(Hook::AttnOut, attn_out);
        let resid_mid = edit(Hook::ResidMid, x + attn_out.clone());
        let mlp_out = self
            .mlp
            .forward(self.post_attn_norm.forward(resid_mid.clone()));
        let mlp_out = edit(Hook::MlpOut, mlp_out);
        let resid_post = edit(Hook::ResidPost, resid_mid.clone() + mlp_out.clone());
        BlockOutput {
            attn_out,
            resid_mid,
            mlp_out,
            resid_post,
        }
    }
}
