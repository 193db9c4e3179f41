//! The whole decoder: embeddings, blocks, final norm and LM head, with a forward pass that
//! captures values at named sites.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};

use crate::batch::Batch;
use crate::block::{Block, LayerCache, Linear, RmsNorm};
use crate::checkpoint::Checkpoint;
use crate::config::LlamaConfig;
use crate::cpu;
use crate::embed::Embedding;
use crate::error::{Error, Result};
use crate::gemm;
use crate::intervene::Edits;
use crate::rope::Rope;
use crate::site::{Hook, Site};
use crate::weights::TensorSource;

/// Added to the attention score of a key a query must not see. Finite, so that a padding row
/// that sees no key at all gets a uniform (unused) distribution instead of NaN.
const MASKED: f32 = -1.0e30;

/// Which logits a forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Logits at every position, `[batch, seq, vocab]`.
    All,
    /// Logits at the last position only, `[batch, 1, vocab]` (all generation needs).
    Last,
    /// No logits: only captures (saves the LM head, often the largest matrix).
    None,
}

/// Values captured during a forward pass, each `[batch, seq, width]` (left-padded like the batch).
#[derive(Debug)]
pub struct Captures<B: Backend> {
    values: BTreeMap<Site, Tensor<B, 3>>,
}

impl<B: Backend> Captures<B> {
    /// The value captured at a site, if it was requested.
    pub fn get(&self, site: &Site) -> Option<&Tensor<B, 3>> {
        self.values.get(site)
    }

    /// Takes the value captured at a site out of the set.
    pub fn take(&mut self, site: &Site) -> Option<Tensor<B, 3>> {
        self.values.remove(site)
    }

    /// Sites captured, in model order.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.values.keys()
    }
}

/// What a forward pass returns.
#[derive(Debug)]
pub struct Output<B: Backend> {
    /// Logits as requested by [`Logits`].
    pub logits: Option<Tensor<B, 3>>,
    /// Values at the requested sites.
    pub captures: Captures<B>,
}

/// A LLaMA-family decoder.
#[derive(Debug, Clone)]
pub struct Llama<B: Backend> {
    config: LlamaConfig,
    embed: Embedding<B>,
    blocks: Vec<Block<B>>,
    norm: RmsNorm<B>,
    lm_head: Linear<B>,
    rope: Rope,
    device: B::Device,
    dtype: DType,
}

impl<B: Backend> Llama<B> {
    /// Loads a checkpoint: a Hugging Face directory (`config.json` + safetensors) or a `.gguf`.
    pub fn load(path: &Path, device: &B::Device) -> Result<Self> {
        let checkpoint = Checkpoint::open(path)?;
        Self::from_weights(checkpoint.config.clone(), checkpoint.source(), device)
    }

    /// Loads a checkpoint with its weights and activations held as `dtype` on a backend that
    /// holds the model's float type (CUDA); see [`Self::from_weights_as`].
    pub fn load_as(path: &Path, device: &B::Device, dtype: DType) -> Result<Self> {
        let checkpoint = Checkpoint::open(path)?;
        Self::from_weights_as(
            checkpoint.config.clone(),
            checkpoint.source(),
            device,
            dtype,
        )
    }

    /// Builds the model from a config and weights named as in HF checkpoints, in the device's
    /// float type ([`gemm::model_dtype`]: f32 on the CPU, `--compute-dtype` on a GPU).
    pub fn from_weights(
        config: LlamaConfig,
        w: &dyn TensorSource,
        device: &B::Device,
    ) -> Result<Self> {
        Self::from_weights_as(config, w, device, gemm::model_dtype::<B>(device))
    }

    /// [`Self::from_weights`] with the products' weights, the embeddings and the activations
    /// between operations held as `dtype` (F32, BF16 or F16) on backends that hold the model's
    /// float type (CUDA): read tensor by tensor in that type, a half checkpoint without an f32
    /// copy. Norm weights stay f32; norms, RoPE and softmax compute in f32. The CPU backends
    /// hold f32 whatever `dtype`.
    pub fn from_weights_as(
        config: LlamaConfig,
        w: &dyn TensorSource,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self> {
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(Error::Device(format!(
                "the model runs in f32, bf16 or f16, not {dtype:?}"
            )));
        }
        let dtype = if gemm::is_cuda::<B>() {
            dtype
        } else {
            DType::F32
        };
        let (v, d) = (config.vocab_size, config.hidden_size);
        let embed_name = "model.embed_tokens.weight";
        let held = Embedding::<B>::rows_of(w.read_quantized(embed_name, &[v, d])?);
        let (embed, lm_head) = match held {
            // The rows as the checkpoint holds them, shared with a tied head: one copy.
            Some(rows) => {
                let head = if config.tie_word_embeddings {
                    Linear::from_quantized(rows.clone())
                } else {
                    Linear::load_fused_as(
                        w,
                        &[("lm_head.weight".to_string(), v)],
                        d,
                        device,
                        dtype,
                    )?
                };
                (Embedding::Rows(rows), head)
            }
            None => {
                let table = if gemm::is_cuda::<B>() {
                    Tensor::from_data(w.read_data(embed_name, &[v, d], dtype)?, (device, dtype))
                } else {
                    Tensor::from_data(
                        TensorData::new(w.read_f32(embed_name, &[v, d])?, [v, d]),
                        device,
                    )
                };
                // A tied head is the embedding (on flex it shares the tensor's storage: its
                // `[vocab, d]` is `[out, in]`).
                let head = if config.tie_word_embeddings {
                    Linear::from_out_in_tensor(table.clone())
                } else {
                    Linear::load_fused_as(
                        w,
                        &[("lm_head.weight".to_string(), v)],
                        d,
                        device,
                        dtype,
                    )?
                };
                (Embedding::Tensor(table), head)
            }
        };
        let blocks = (0..config.num_layers)
            .map(|l| {
                let block = Block::load(w, l, &config, device, dtype)?;
                if gemm::is_cuda::<B>() {
                    // Uploads are queued: waiting for each block's keeps the host copies in
                    // flight to about one block's (host memory stays small while loading 8B).
                    B::sync(device).map_err(|e| {
                        Error::Device(format!("uploading layer {l}'s weights: {e:?}"))
                    })?;
                }
                Ok(block)
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(w, "model.norm", &config, device)?;
        Ok(Self {
            rope: Rope::new(&config),
            config,
            embed,
            blocks,
            norm,
            lm_head,
            device: device.clone(),
            dtype,
        })
    }

    /// The float type the weights and activations are held in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The architecture.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The LM head applied to rows of final-norm outputs (`ln_final`): `[rows, hidden]` to
    /// `[rows, vocab]`. Lets a caller compute logits only at the positions it keeps.
    pub fn head(&self, normed: Tensor<B, 2>) -> Tensor<B, 2> {
        let [rows, d] = normed.dims();
        let logits = self.lm_head.forward(normed.reshape([1, rows, d]));
        logits.reshape([rows, self.config.vocab_size])
    }

    /// The forward step of a whole left-padded batch (no cached tokens before it).
    fn step_of<'a>(&self, batch: &'a Batch) -> Step<'a, B> {
        Step {
            tokens: &batch.tokens,
            positions: &batch.positions,
            mask: Some(&batch.mask),
            rows: batch.size(),
            seq: batch.seq,
            bias: attention_bias::<B>(batch, &self.device),
        }
    }

    /// Runs a left-padded batch, returning the requested logits and the values at `sites`.
    pub fn forward(&self, batch: &Batch, sites: &[Site], logits: Logits) -> Result<Output<B>> {
        self.run(self.step_of(batch), None, sites, logits, None)
    }

    /// Like [`Self::forward`], with an intervention editing block values on the way.
    pub fn forward_with(
        &self,
        batch: &Batch,
        sites: &[Site],
        logits: Logits,
        edits: Option<Edits<'_>>,
    ) -> Result<Output<B>> {
        self.run(self.step_of(batch), None, sites, logits, edits)
    }

    /// Runs the prompt of a generation: like [`Self::forward`], and returns the cache that
    /// [`Self::decode`] continues from.
    pub fn prefill(
        &self,
        batch: &Batch,
        sites: &[Site],
        logits: Logits,
    ) -> Result<(Output<B>, KvCache<B>)> {
        self.prefill_with(batch, sites, logits, None)
    }

    /// Like [`Self::prefill`], with an intervention editing block values on the way.
    pub fn prefill_with(
        &self,
        batch: &Batch,
        sites: &[Site],
        logits: Logits,
        edits: Option<Edits<'_>>,
    ) -> Result<(Output<B>, KvCache<B>)> {
        let mut cache = KvCache {
            layers: vec![LayerCache::default(); self.config.num_layers],
            mask: (0..batch.size())
                .map(|b| batch.mask[b * batch.seq..(b + 1) * batch.seq].to_vec())
                .collect(),
            next: batch.lengths.clone(),
            device: self.device.clone(),
        };
        let out = self.run(self.step_of(batch), Some(&mut cache), sites, logits, edits)?;
        Ok((out, cache))
    }

    /// Feeds one new token per row of the cache and returns the logits `[rows, 1, vocab]`.
    pub fn decode(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Result<Tensor<B, 3>> {
        self.decode_with(tokens, cache, None)
    }

    /// Like [`Self::decode`], with an intervention (one [`Edits::rows`] entry per cache row).
    pub fn decode_with(
        &self,
        tokens: &[u32],
        cache: &mut KvCache<B>,
        edits: Option<Edits<'_>>,
    ) -> Result<Tensor<B, 3>> {
        self.decode_sites(tokens, cache, &[], edits)?
            .logits
            .ok_or_else(|| Error::Input("decode produced no logits".into()))
    }

    /// Like [`Self::decode_with`], also returning the new tokens' values at `sites`
    /// (`[rows, 1, width]` each).
    pub fn decode_sites(
        &self,
        tokens: &[u32],
        cache: &mut KvCache<B>,
        sites: &[Site],
        edits: Option<Edits<'_>>,
    ) -> Result<Output<B>> {
        let rows = cache.rows();
        if tokens.len() != rows {
            return Err(Error::Input(format!(
                "decode got {} tokens for a cache of {rows} rows",
                tokens.len()
            )));
        }
        let positions = cache.next.clone();
        for row in &mut cache.mask {
            row.push(true);
        }
        let past = cache.len();
        // The new token sees every real key of its row, including itself.
        let bias: Vec<f32> = cache
            .mask
            .iter()
            .flat_map(|row| row.iter().map(|&m| if m { 0.0 } else { MASKED }))
            .collect();
        let bias = Tensor::from_data(
            TensorData::new(bias, [rows, 1, 1, past]),
            (&self.device, DType::F32),
        );
        let step = Step {
            tokens,
            positions: &positions,
            mask: None,
            rows,
            seq: 1,
            bias,
        };
        let out = self.run(step, Some(cache), sites, Logits::Last, edits)?;
        for n in &mut cache.next {
            *n += 1;
        }
        Ok(out)
    }

    fn run(
        &self,
        step: Step<'_, B>,
        cache: Option<&mut KvCache<B>>,
        sites: &[Site],
        logits: Logits,
        edits: Option<Edits<'_>>,
    ) -> Result<Output<B>> {
        if let Some(e) = edits {
            e.intervention.check(&self.config)?;
            if e.rows.len() != step.rows {
                return Err(Error::Input(format!(
                    "an intervention for {} rows on a batch of {}",
                    e.rows.len(),
                    step.rows
                )));
            }
        }
        let edits = edits.filter(|e| !e.intervention.is_empty());
        if cpu::is_flex::<B>() {
            // The CPU kernels split each product over rayon's pool. Run from a thread outside
            // the pool, every split would wake the pool's threads while this one waits; run on a
            // pool thread, a split starts at once here and the other threads steal their share.
            return rayon::scope(|_| self.run_step(step, cache, sites, logits, edits));
        }
        self.run_step(step, cache, sites, logits, edits)
    }

    fn run_step(
        &self,
        step: Step<'_, B>,
        mut cache: Option<&mut KvCache<B>>,
        sites: &[Site],
        logits: Logits,
        edits: Option<Edits<'_>>,
    ) -> Result<Output<B>> {
        #[cfg(feature = "cuda")]
        if gemm::is_cuda::<B>() {
            // A cuBLAS product that failed after its operation returned is reported here, at
            // the next forward pass, and by `run_on` when the command ends.
            crate::cuda::check()?;
        }
        let cfg = &self.config;
        let wanted: BTreeSet<Site> = sites
            .iter()
            .map(|s| s.check(cfg.num_layers))
            .collect::<Result<_>>()?;
        if let Some(&bad) = step.tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(Error::Input(format!(
                "token id {bad} is outside the vocabulary (size {})",
                cfg.vocab_size
            )));
        }
        let (b, t) = (step.rows, step.seq);
        let device = &self.device;
        let mut x = self
            .embed
            .lookup(step.tokens, device)?
            .reshape([b, t, cfg.hidden_size]);
        let (cos, sin) = self.rope.tables::<B>(step.positions, b, t, device);
        let bias = step.bias;

        let mut values = BTreeMap::new();
        let mut keep = |site: Site, value: &Tensor<B, 3>| {
            if wanted.contains(&site) {
                values.insert(site, value.clone());
            }
        };
        // An edit's failure inside a block cannot return through it; it is kept and returned
        // after the block.
        let failed: RefCell<Option<Error>> = RefCell::new(None);
        let edit = |site: Site, value: Tensor<B, 3>| -> Tensor<B, 3> {
            match edits {
                Some(e) if e.touches(site) => {
                    let dims = value.dims();
                    let device = value.device();
                    edit_host(e, site, value, step.positions, step.mask).unwrap_or_else(|err| {
                        failed.borrow_mut().get_or_insert(err);
                        Tensor::zeros(dims, &device)
                    })
                }
                _ => value,
            }
        };
        for (layer, block) in self.blocks.iter().enumerate() {
            let resid_pre = Site::Block {
                layer,
                hook: Hook::ResidPre,
            };
            x = edit(resid_pre, x);
            keep(resid_pre, &x);
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[layer]);
            let out = block.forward_edited(x, &cos, &sin, &bias, slot, &mut |hook, value| {
                edit(Site::Block { layer, hook }, value)
            });
            if let Some(err) = failed.borrow_mut().take() {
                return Err(err);
            }
            for (hook, value) in [
                (Hook::AttnOut, &out.attn_out),
                (Hook::ResidMid, &out.resid_mid),
                (Hook::MlpOut, &out.mlp_out),
                (Hook::ResidPost, &out.resid_post),
            ] {
                keep(Site::Block { layer, hook }, value);
            }
            x = out.resid_post;
        }
        let need_all = logits == Logits::All || wanted.contains(&Site::Logits);
        let need_norm = logits != Logits::None || need_all || wanted.contains(&Site::LnFinal);
        let mut out_logits = None;
        if need_norm {
            let normed = self.norm.forward(x);
            keep(Site::LnFinal, &normed);
            if need_all {
                let all = self.lm_head.forward(normed);
                keep(Site::Logits, &all);
                out_logits = match logits {
                    Logits::All => Some(all),
                    Logits::Last => Some(all.slice([0..b, t - 1..t, 0..cfg.vocab_size])),
                    Logits::None => None,
                };
            } else if logits == Logits::Last {
                let last = normed.slice([0..b, t - 1..t, 0..cfg.hidden_size]);
                out_logits = Some(self.lm_head.forward(last));
            }
        }
        Ok(Output {
            logits: out_logits,
            captures: Captures { values },
        })
    }
}

/// One forward step's inputs: token ids and positions `[rows * seq]` and the attention bias.
struct Step<'a, B: Backend> {
    tokens: &'a [u32],
    positions: &'a [usize],
    /// Which tokens are real (`None`: all of them).
    mask: Option<&'a [bool]>,
    rows: usize,
    seq: usize,
    bias: Tensor<B, 4>,
}

/// Applies an intervention to a value on the host (in place on the CPU backend).
fn edit_host<B: Backend>(
    edits: Edits<'_>,
    site: Site,
    value: Tensor<B, 3>,
    positions: &[usize],
    mask: Option<&[bool]>,
) -> Result<Tensor<B, 3>> {
    let dims = value.dims();
    let mut done = Ok(());
    let apply = |v: &mut [f32]| edits.apply(site, v, dims[2], positions, mask);
    match cpu::update_in_place(value, |v| done = apply(v)) {
        Ok(value) => done.map(|()| value),
        Err(value) => {
            let (device, dtype) = (value.device(), value.dtype());
            let mut data = value
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| Error::Input(format!("reading {site}: {e:?}")))?;
            apply(&mut data)?;
            // Back in the model's float type (bf16 on a GPU).
            Ok(cpu::tensor::<B, 3>(data, dims, &device).cast(dtype))
        }
    }
}

/// Keys and values of the tokens seen so far, per layer, for generation.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    /// Per row, whether each cached position is a real token (left padding is not).
    mask: Vec<Vec<bool>>,
    /// Per row, the position of the next token.
    next: Vec<usize>,
    /// The device the cached tensors live on.
    device: B::Device,
}

impl<B: Backend> KvCache<B> {
    /// Number of rows (sequences).
    pub fn rows(&self) -> usize {
        self.mask.len()
    }

    /// Number of cached positions (padding included).
    pub fn len(&self) -> usize {
        self.mask.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the given rows, in that order (finished sequences leave the batch).
    pub fn retain(&mut self, rows: &[usize]) {
        if rows.len() == self.rows() && rows.iter().enumerate().all(|(i, &r)| i == r) {
            return;
        }
        let idx = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [rows.len()],
            ),
            &self.device,
        );
        for layer in &mut self.layers {
            layer.select_rows(rows, &idx);
        }
        self.mask = rows.iter().map(|&r| self.mask[r].clone()).collect();
        self.next = rows.iter().map(|&r| self.next[r]).collect();
        self.trim();
    }

    /// Adds the rows of `other` (new prompts' prefill) after these rows, left-padding the shorter
    /// of the two with masked positions so that both have the same length: the way a finished
    /// sequence's slot is refilled without waiting for the rest of its batch.
    pub fn append(&mut self, other: KvCache<B>) -> Result<()> {
        if other.layers.len() != self.layers.len() {
            return Err(Error::Input(format!(
                "appending a cache of {} layers to one of {}",
                other.layers.len(),
                self.layers.len()
            )));
        }
        if self.rows() == 0 {
            *self = other;
            return Ok(());
        }
        if other.rows() == 0 {
            return Ok(());
        }
        let len = self.len().max(other.len());
        let mut other = other;
        self.pad_left(len);
        other.pad_left(len);
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            if mine.is_empty() != theirs.is_empty() {
                return Err(Error::Input(
                    "appending a cache filled up to another layer".into(),
                ));
            }
            mine.concat_rows(theirs, &self.device);
        }
        self.mask.extend(other.mask);
        self.next.extend(other.next);
        Ok(())
    }

    /// Prepends masked positions (zero keys and values) until every row holds `len` positions.
    fn pad_left(&mut self, len: usize) {
        let extra = len.saturating_sub(self.len());
        if extra == 0 {
            return;
        }
        for layer in &mut self.layers {
            layer.shift(extra, 0, &self.device);
        }
        for row in &mut self.mask {
            row.splice(0..0, std::iter::repeat_n(false, extra));
        }
    }

    /// Drops leading positions that are padding in every row (left over from rows that left).
    fn trim(&mut self) {
        let lead = self
            .mask
            .iter()
            .map(|row| row.iter().take_while(|&&m| !m).count())
            .min()
            .unwrap_or(0);
        if lead == 0 {
            return;
        }
        for layer in &mut self.layers {
            layer.shift(0, lead, &self.device);
        }
        for row in &mut self.mask {
            row.drain(0..lead);
        }
    }
}

/// The additive attention bias `[batch, 1, seq, seq]` (f32): causal, and blind to padded keys.
fn attention_bias<B: Backend>(batch: &Batch, device: &B::Device) -> Tensor<B, 4> {
    let (b, t) = (batch.size(), batch.seq);
    let mut bias = vec![MASKED; b * t * t];
    for row in 0..b {
        let mask = &batch.mask[row * t..(row + 1) * t];
        for q in 0..t {
            let line = &mut bias[(row * t + q) * t..(row * t + q + 1) * t];
            for k in 0..=q {
                if mask[k] {
                    line[k] = 0.0;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(bias, [b, 1, t, t]), (device, DType::F32))
}
