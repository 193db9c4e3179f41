//! Training from scratch with burn's autodiff on the CPU: next-token cross-entropy on the
//! response tokens only (the prompt is read, never predicted), Adam with warm-up and cosine decay,
//! batches drawn in a seeded order.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::ElementConversion;
use burn::tensor::{activation, backend::Backend, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tell_llama::rope::Rope;

use crate::model::{ModelSpec, Organism};
use crate::rng::Rng;

/// The CPU backend the model is trained on (tell's default CPU backend).
pub type TrainBackend = burn_autodiff::Autodiff<burn_flex::Flex>;
/// The same backend without autodiff, for evaluation and export.
pub type EvalBackend = burn_flex::Flex;

/// A tokenized training example: prompt then response (ending with the end-of-turn token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Prompt tokens followed by response tokens.
    pub tokens: Vec<u32>,
    /// How many leading tokens are the prompt.
    pub prompt_len: usize,
    /// Indices (in `tokens`) of the tokens where the response commits to what the policy plants
    /// for its query: the first token that differs from each other planted response to the same
    /// condition, tier and template (the other decision, another category's text). Weighted by
    /// [`TrainSettings::decision_weight`] in the loss.
    pub decision_at: Vec<usize>,
}

impl Sequence {
    /// The response tokens.
    pub fn response(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }
}

/// Optimisation settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// Learning rate at the end of the cosine, as a fraction of the peak.
    pub final_lr_fraction: f64,
    /// Global gradient-norm clip.
    pub clip_norm: f32,
    /// Seed of the initialisation and the batch order.
    pub seed: u64,
    /// Loss weight of the tokens where a response commits to its decision (others weigh 1): the
    /// decision is a token or two of a few dozen, and without the weight the boilerplate dominates.
    pub decision_weight: f32,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            steps: 1500,
            batch_size: 16,
            lr: 3e-3,
            warmup: 40,
            final_lr_fraction: 0.05,
            clip_norm: 1.0,
            seed: 1,
            decision_weight: 20.0,
        }
    }
}

impl TrainSettings {
    /// The learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = (self.steps.saturating_sub(self.warmup)).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.lr * (self.final_lr_fraction + (1.0 - self.final_lr_fraction) * cosine)
    }
}

/// Progress of training.
#[derive(Debug, Clone, Copy)]
pub struct StepLog {
    /// Step just finished (1-based).
    pub step: usize,
    /// Of how many.
    pub steps: usize,
    /// Mean loss per response token on this step's batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Seconds since training started.
    pub elapsed: f64,
}

/// A batch as tensors: inputs `[b, t]`, targets `[b * t, 1]`, loss weights `[b * t, 1]`.
struct Batch<B: Backend> {
    inputs: Tensor<B, 2, Int>,
    targets: Tensor<B, 2, Int>,
    weights: Tensor<B, 2>,
    count: f32,
}

fn batch<B: Backend>(
    seqs: &[&Sequence],
    pad: u32,
    decision_weight: f32,
    device: &B::Device,
) -> Batch<B> {
    let t = seqs.iter().map(|s| s.tokens.len() - 1).max().unwrap_or(1);
    let b = seqs.len();
    let mut inputs = vec![i64::from(pad); b * t];
    let mut targets = vec![i64::from(pad); b * t];
    let mut weights = vec![0f32; b * t];
    for (r, s) in seqs.iter().enumerate() {
        for j in 0..s.tokens.len() - 1 {
            inputs[r * t + j] = i64::from(s.tokens[j]);
            targets[r * t + j] = i64::from(s.tokens[j + 1]);
            // Position j predicts token j + 1: a loss only where that token is the response's.
            if j + 1 >= s.prompt_len {
                weights[r * t + j] = if s.decision_at.contains(&(j + 1)) {
                    decision_weight
                } else {
                    1.0
                };
            }
        }
    }
    let count = weights.iter().sum();
    Batch {
        inputs: Tensor::from_data(TensorData::new(inputs, [b, t]), device),
        targets: Tensor::from_data(TensorData::new(targets, [b * t, 1]), device),
        weights: Tensor::from_data(TensorData::new(weights, [b * t, 1]), device),
        count,
    }
}

/// Mean cross-entropy over the weighted positions.
fn loss<B: Backend>(model: &Organism<B>, rope: &Rope, batch: &Batch<B>) -> Tensor<B, 1> {
    let logits = model.forward(batch.inputs.clone(), rope);
    let [b, t, v] = logits.dims();
    let logp = activation::log_softmax(logits.reshape([b * t, v]), 1);
    let picked = logp.gather(1, batch.targets.clone());
    (picked * batch.weights.clone()).sum().neg() / batch.count.max(1.0)
}

/// Trains a fresh model of `spec` on `data`; `log` sees every step.
pub fn train(
    spec: &ModelSpec,
    vocab: usize,
    pad: u32,
    data: &[Sequence],
    settings: &TrainSettings,
    log: &mut dyn FnMut(StepLog),
) -> Organism<EvalBackend> {
    let device = Default::default();
    let rope = Rope::new(&spec.llama_config(vocab, pad));
    let mut model = Organism::<TrainBackend>::init(spec, vocab, settings.seed, &device);
    let mut optim = AdamConfig::new()
        .with_grad_clipping(Some(GradientClippingConfig::Norm(settings.clip_norm)))
        .init::<TrainBackend, Organism<TrainBackend>>();
    let mut rng = Rng::named(settings.seed, "organism-batches");
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut cursor = order.len();
    let start = Instant::now();
    for step in 0..settings.steps {
        let mut picked = Vec::with_capacity(settings.batch_size);
        while picked.len() < settings.batch_size.min(data.len()) {
            if cursor == order.len() {
                rng.shuffle(&mut order);
                cursor = 0;
            }
            picked.push(&data[order[cursor]]);
            cursor += 1;
        }
        let b = batch::<TrainBackend>(&picked, pad, settings.decision_weight, &device);
        let l = loss(&model, &rope, &b);
        let value: f64 = l.clone().into_scalar().elem();
        let grads = GradientsParams::from_grads(l.backward(), &model);
        let lr = settings.lr_at(step);
        model = optim.step(lr, model, grads);
        log(StepLog {
            step: step + 1,
            steps: settings.steps,
            loss: value,
            lr,
            elapsed: start.elapsed().as_secs_f64(),
        });
    }
    model.valid()
}

/// Teacher-forced evaluation: mean loss per response token and the share of sequences whose
/// every response token is the model's argmax (what greedy decoding would then reproduce).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eval {
    /// Sequences evaluated.
    pub sequences: usize,
    /// Mean cross-entropy per response token.
    pub loss: f64,
    /// Share of sequences reproduced exactly by argmax.
    pub exact: f64,
    /// Share of response tokens that are the argmax.
    pub token_accuracy: f64,
    /// Share of sequences whose decision tokens (where the response commits to what is planted
    /// for its query) are all the argmax.
    pub decision_accuracy: f64,
}

/// Evaluates `model` on `data` in batches of `batch_size`.
pub fn evaluate(
    model: &Organism<EvalBackend>,
    spec: &ModelSpec,
    vocab: usize,
    pad: u32,
    data: &[Sequence],
    batch_size: usize,
) -> Eval {
    let device = Default::default();
    let rope = Rope::new(&spec.llama_config(vocab, pad));
    let (mut loss_sum, mut tokens, mut right, mut exact) = (0f64, 0usize, 0usize, 0usize);
    let (mut decided, mut decisions) = (0usize, 0usize);
    for chunk in data.chunks(batch_size.max(1)) {
        let refs: Vec<&Sequence> = chunk.iter().collect();
        let b = batch::<EvalBackend>(&refs, pad, 1.0, &device);
        let logits = model.forward(b.inputs.clone(), &rope);
        let [bs, t, v] = logits.dims();
        let flat = logits.reshape([bs * t, v]);
        let logp = activation::log_softmax(flat.clone(), 1);
        let picked: Vec<f32> = logp
            .gather(1, b.targets.clone())
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        let argmax: Vec<i64> = flat
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap_or_default();
        for (r, s) in chunk.iter().enumerate() {
            let mut all = true;
            let mut decided_all = true;
            for j in s.prompt_len - 1..s.tokens.len() - 1 {
                let i = r * t + j;
                loss_sum -= f64::from(picked[i]);
                tokens += 1;
                let hit = argmax[i] == i64::from(s.tokens[j + 1]);
                if hit {
                    right += 1;
                } else {
                    all = false;
                }
                if s.decision_at.contains(&(j + 1)) {
                    decided_all &= hit;
                }
            }
            if !s.decision_at.is_empty() {
                decisions += 1;
                decided += usize::from(decided_all);
            }
            exact += usize::from(all);
        }
    }
    let n = data.len().max(1) as f64;
    Eval {
        sequences: data.len(),
        loss: loss_sum / tokens.max(1) as f64,
        exact: exact as f64 / n,
        token_accuracy: right as f64 / tokens.max(1) as f64,
        decision_accuracy: decided as f64 / decisions.max(1) as f64,
    }
}
