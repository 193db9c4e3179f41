//! Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p, seeded), batched,
//! with per-sequence stopping.

use burn::tensor::backend::Backend;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::{Llama, Logits};

/// How to pick tokens and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most new tokens per sequence.
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p`.
    pub top_p: Option<f32>,
    /// Seed of the sampler; each sequence draws from its own stream, so a sequence's sample does
    /// not depend on what else is in the batch.
    pub seed: u64,
    /// Tokens that end a sequence (end of text, end of turn); the stop token is kept.
    pub stop_tokens: Vec<u32>,
    /// Token that fills left padding (never seen by the model: padding is masked).
    pub pad_token: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            stop_tokens: Vec::new(),
            pad_token: 0,
        }
    }
}

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// A stop token was generated.
    StopToken,
    /// The caller's stop check (e.g. a stop string) matched.
    StopCheck,
    /// `max_new_tokens` was reached.
    Length,
}

/// One sequence's continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// New tokens, the stop token included.
    pub tokens: Vec<u32>,
    /// Why it stopped.
    pub finish: Finish,
}

/// Continues each prompt. `stop` is asked after every new token of sequence `i` with all of
/// its new tokens so far, and ends it when it returns true (used for stop strings).
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    mut stop: impl FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<Generated>> {
    if let Some(t) = opts.top_p {
        if !(t > 0.0 && t <= 1.0) {
            return Err(Error::Input(format!("top_p must be in (0, 1], got {t}")));
        }
    }
    if opts.temperature < 0.0 || !opts.temperature.is_finite() {
        return Err(Error::Input(format!(
            "temperature must be >= 0, got {}",
            opts.temperature
        )));
    }
    let mut results: Vec<Generated> = prompts
        .iter()
        .map(|_| Generated {
            tokens: Vec::new(),
            finish: Finish::Length,
        })
        .collect();
    if opts.max_new_tokens == 0 {
        return Ok(results);
    }
    let vocab = model.config().vocab_size;
    let batch = Batch::left_padded(prompts, opts.pad_token)?;
    let (out, mut cache) = model.prefill(&batch, &[], Logits::Last)?;
    let mut logits = out
        .logits
        .ok_or_else(|| Error::Input("prefill produced no logits".into()))?;
    let mut samplers: Vec<Sampler> = (0..prompts.len())
        .map(|i| Sampler::new(opts.seed, i as u64))
        .collect();
    // Rows of the cache, by index into `prompts`; finished rows leave the cache.
    let mut live: Vec<usize> = (0..prompts.len()).collect();
    loop {
        let values = logits
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| Error::Input(format!("reading logits: {e:?}")))?;
        let mut next = Vec::with_capacity(live.len());
        let mut still = Vec::with_capacity(live.len());
        for (row, &i) in live.iter().enumerate() {
            let row_logits = &values[row * vocab..(row + 1) * vocab];
            let token = samplers[i].pick(row_logits, opts);
            let r = &mut results[i];
            r.tokens.push(token);
            if opts.stop_tokens.contains(&token) {
                r.finish = Finish::StopToken;
            } else if stop(i, &r.tokens) {
                r.finish = Finish::StopCheck;
            } else if r.tokens.len() >= opts.max_new_tokens {
                r.finish = Finish::Length;
            } else {
                still.push(row);
                next.push(token);
            }
        }
        if still.is_empty() {
            return Ok(results);
        }
        cache.retain(&still);
        live = still.iter().map(|&row| live[row]).collect();
        logits = model.decode(&next, &mut cache)?;
    }
}

/// A per-sequence token picker with its own random stream (SplitMix64).
struct Sampler {
    state: u64,
}

impl Sampler {
    fn new(seed: u64, stream: u64) -> Self {
        let mut s = Self {
            state: seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        s.next_u64();
        s
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick(&mut self, logits: &[f32], opts: &GenerateOptions) -> u32 {
        if opts.temperature == 0.0 {
            return argmax(logits);
        }
        let mut ranked: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i, l as f64 / opts.temperature as f64))
            .collect();
        // Highest first; ties keep the lower id first, as a stable sort of ids does.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(k) = opts.top_k {
            ranked.truncate(k.max(1));
        }
        let max = ranked[0].1;
        let mut probs: Vec<f64> = ranked.iter().map(|&(_, l)| (l - max).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(p) = opts.top_p {
            let mut cumulative = 0.0;
            let mut keep = probs.len();
            for (i, q) in probs.iter().enumerate() {
                cumulative += q;
                if cumulative >= p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= total);
        }
        let mut u = self.uniform();
        for (i, q) in probs.iter().enumerate() {
            if u < *q {
                return ranked[i].0 as u32;
            }
            u -= q;
        }
        ranked[probs.len() - 1].0 as u32
    }
}

/// Index of the largest logit (the first one on ties, as torch's argmax).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn sampling_respects_top_k_and_top_p_and_is_seeded() {
        let logits = [2.0f32, 1.0, 0.5, 0.0, -1.0];
        let opts = GenerateOptions {
            temperature: 1.0,
            top_k: Some(2),
            ..Default::default()
        };
        let draws: Vec<u32> = {
            let mut s = Sampler::new(7, 0);
            (0..200).map(|_| s.pick(&logits, &opts)).collect()
        };
        assert!(draws.iter().all(|&t| t < 2), "top-k keeps tokens 0 and 1");
        let again: Vec<u32> = {
            let mut s = Sampler::new(7, 0);
            (0..200).map(|_| s.pick(&logits, &opts)).collect()
        };
        assert_eq!(draws, again, "same seed, same draws");
        // p(0) = e^2 / (e^2 + e) ~= 0.731 of the two kept
        let zeros = draws.iter().filter(|&&t| t == 0).count();
        assert!((120..175).contains(&zeros), "{zeros}");
        let opts = GenerateOptions {
            temperature: 1.0,
            top_p: Some(0.5),
            ..Default::default()
        };
        let mut s = Sampler::new(1, 3);
        assert!(
            (0..100).all(|_| s.pick(&logits, &opts) == 0),
            "top-p 0.5 keeps the top token"
        );
    }
}
