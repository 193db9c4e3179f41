//! Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p, seeded), batched,
//! with per-sequence stopping.

use std::ops::ControlFlow;

use burn::tensor::backend::Backend;

use std::sync::Arc;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::intervene::{Edits, Intervention, PatchValues, RowEdit};
use crate::model::{Captures, KvCache, Llama, Logits};
use crate::site::Site;

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
    /// Edits applied at every step, prompt and new tokens alike (positions from the prompt
    /// length on are `response`); each prompt's noise stream is keyed by its index.
    pub intervention: Option<Arc<Intervention>>,
    /// Per prompt, the values `patch` edits copy in (required when the intervention patches).
    pub patches: Option<Arc<Vec<Arc<PatchValues>>>>,
    /// Global index of the first prompt (a shard's offset in the whole prompt list): prompt `i`
    /// samples from stream `first_index + i` and draws its noise from that key, so a prompt's
    /// tokens are the same whichever shard it runs in.
    pub first_index: usize,
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
            intervention: None,
            patches: None,
            first_index: 0,
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

/// Continues each prompt, all in one batch. `stop` is asked after every new token of sequence
/// `i` with all of its new tokens so far, and ends it when it returns true (used for stop
/// strings).
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    stop: impl FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<Generated>> {
    let mut results: Vec<Generated> = prompts
        .iter()
        .map(|_| Generated {
            tokens: Vec::new(),
            finish: Finish::Length,
        })
        .collect();
    generate_queued(model, prompts, prompts.len(), opts, stop, |i, g| {
        results[i] = g;
        ControlFlow::Continue(())
    })?;
    Ok(results)
}

/// Continues every prompt with at most `batch_size` sequences running at once: when one
/// finishes, the next waiting prompt is prefilled and joins the running batch in its slot
/// (continuous batching), so one long answer does not hold a batch of finished rows. `done` gets
/// each sequence as it finishes (not in prompt order) and may stop the whole run with
/// `ControlFlow::Break`. Sequence `i` samples from its own stream of `opts.seed`, so its tokens do
/// not depend on `batch_size` or on which prompts run beside it.
pub fn generate_queued<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    batch_size: usize,
    opts: &GenerateOptions,
    stop: impl FnMut(usize, &[u32]) -> bool,
    done: impl FnMut(usize, Generated) -> ControlFlow<()>,
) -> Result<()> {
    generate_observed(model, prompts, batch_size, opts, stop, done, None)
}

/// What a generation shows of its hidden values as it runs, so that captures need no second
/// pass over the prompts.
pub struct Observe<'a> {
    /// Sites read at each prefill.
    pub prompt_sites: Vec<Site>,
    /// Hand out only each prompt's last position at prefill (the rest stays where the model
    /// ran).
    pub last_only: bool,
    /// Sites read at each decoding step (response positions). When there are any, a finished
    /// sequence takes one more decoding step, feeding its last token, so that every response
    /// token has its values.
    pub response_sites: Vec<Site>,
    /// Gets the values as they are read; an error stops the generation.
    pub sink: &'a mut dyn FnMut(Seen<'_>) -> Result<()>,
}

/// Values read during a generation.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// Prompt `index`'s values at `site`: `[prompt_len, width]`, or `[1, width]` (the last
    /// position) with [`Observe::last_only`].
    Prompt {
        /// Index of the prompt.
        index: usize,
        /// The site.
        site: Site,
        /// Row-major values.
        values: &'a [f32],
    },
    /// Prompt `index`'s values at `site` for its response token `position` (0-based).
    Response {
        /// Index of the prompt.
        index: usize,
        /// The site.
        site: Site,
        /// Index of the token in the response.
        position: usize,
        /// `[width]` values.
        values: &'a [f32],
    },
}

/// [`generate_queued`], handing the values at `observe`'s sites to its sink as they are
/// computed: every prompt's at its prefill, and each response token's at the decoding step that
/// feeds it.
pub fn generate_observed<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    batch_size: usize,
    opts: &GenerateOptions,
    mut stop: impl FnMut(usize, &[u32]) -> bool,
    mut done: impl FnMut(usize, Generated) -> ControlFlow<()>,
    mut observe: Option<Observe<'_>>,
) -> Result<()> {
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
    if opts.max_new_tokens == 0 {
        if observe.is_some() {
            return Err(Error::Input(
                "values are read during generation, which needs max_new_tokens >= 1".into(),
            ));
        }
        for i in 0..prompts.len() {
            let g = Generated {
                tokens: Vec::new(),
                finish: Finish::Length,
            };
            if done(i, g).is_break() {
                break;
            }
        }
        return Ok(());
    }
    let batch_size = batch_size.max(1);
    let vocab = model.config().vocab_size;
    if let Some(iv) = &opts.intervention {
        iv.check(model.config())?;
        let patches = opts.patches.as_ref().map_or(0, |p| p.len());
        if iv.patches() && patches != prompts.len() {
            return Err(Error::Input(format!(
                "the intervention patches, and {patches} patch sources were given for {} prompts",
                prompts.len()
            )));
        }
    }
    let prompt_sites: Vec<Site> = observe
        .as_ref()
        .map_or(Vec::new(), |o| o.prompt_sites.clone());
    let response_sites: Vec<Site> = observe
        .as_ref()
        .map_or(Vec::new(), |o| o.response_sites.clone());
    let drain = !response_sites.is_empty();
    // What the intervention needs to know of prompt `i`.
    let row_edit = |i: usize| RowEdit {
        prompt_len: prompts[i].len(),
        key: (opts.first_index + i) as u64,
        patch: opts.patches.as_ref().and_then(|p| p.get(i).cloned()),
    };
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut finished: Vec<Option<Finish>> = vec![None; prompts.len()];
    let mut samplers: Vec<Sampler> = (0..prompts.len())
        .map(|i| Sampler::new(opts.seed, (opts.first_index + i) as u64))
        .collect();
    let mut cache: Option<KvCache<B>> = None;
    // Rows of the cache, by index into `prompts`, and their next-token logits (host copies).
    let mut live: Vec<usize> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut waiting = 0..prompts.len();
    loop {
        // Fill free slots with waiting prompts: prefill them together and join the cache.
        let free = batch_size - live.len();
        if free > 0 && !waiting.is_empty() {
            let take: Vec<usize> = waiting.by_ref().take(free).collect();
            let group: Vec<Vec<u32>> = take.iter().map(|&i| prompts[i].clone()).collect();
            let batch = Batch::left_padded(&group, opts.pad_token)?;
            let rows: Vec<RowEdit> = take.iter().map(|&i| row_edit(i)).collect();
            let edits = opts.intervention.as_deref().map(|iv| Edits {
                intervention: iv,
                rows: &rows,
            });
            let (mut out, fresh) =
                model.prefill_with(&batch, &prompt_sites, Logits::Last, edits)?;
            if let Some(o) = observe.as_mut() {
                show_prompts(o, &mut out.captures, &batch, &take)?;
            }
            values
                .extend(host(out.logits.ok_or_else(|| {
                    Error::Input("prefill produced no logits".into())
                })?)?);
            match cache.as_mut() {
                Some(c) => c.append(fresh)?,
                None => cache = Some(fresh),
            }
            live.extend(take);
        }
        if live.is_empty() {
            return Ok(());
        }
        // Rows fed at the next step: those still running and, when response values are read,
        // those that just finished (once, to feed their last token).
        let mut fed = Vec::with_capacity(live.len());
        for (row, &i) in live.iter().enumerate() {
            let token = samplers[i].pick(&values[row * vocab..(row + 1) * vocab], opts);
            let seq = &mut tokens[i];
            seq.push(token);
            let finish = if opts.stop_tokens.contains(&token) {
                Some(Finish::StopToken)
            } else if stop(i, seq) {
                Some(Finish::StopCheck)
            } else if seq.len() >= opts.max_new_tokens {
                Some(Finish::Length)
            } else {
                None
            };
            match finish {
                Some(finish) if drain => {
                    finished[i] = Some(finish);
                    fed.push(row);
                }
                Some(finish) => {
                    let g = Generated {
                        tokens: std::mem::take(seq),
                        finish,
                    };
                    if done(i, g).is_break() {
                        return Ok(());
                    }
                }
                None => fed.push(row),
            }
        }
        let next: Vec<u32> = fed
            .iter()
            .map(|&row| *tokens[live[row]].last().unwrap_or(&opts.pad_token))
            .collect();
        live = fed.iter().map(|&row| live[row]).collect();
        values.clear();
        let Some(c) = cache.as_mut() else {
            continue;
        };
        if fed.is_empty() {
            cache = None;
            continue;
        }
        c.retain(&fed);
        let rows: Vec<RowEdit> = live.iter().map(|&i| row_edit(i)).collect();
        let edits = opts.intervention.as_deref().map(|iv| Edits {
            intervention: iv,
            rows: &rows,
        });
        let mut out = model.decode_sites(&next, c, &response_sites, edits)?;
        if let Some(o) = observe.as_mut().filter(|_| drain) {
            show_responses(o, &mut out.captures, &live, &tokens)?;
        }
        values = host(
            out.logits
                .ok_or_else(|| Error::Input("decode produced no logits".into()))?,
        )?;
        if drain && live.iter().any(|&i| finished[i].is_some()) {
            let keep: Vec<usize> = (0..live.len())
                .filter(|&r| finished[live[r]].is_none())
                .collect();
            for &i in &live {
                if let Some(finish) = finished[i].take() {
                    let g = Generated {
                        tokens: std::mem::take(&mut tokens[i]),
                        finish,
                    };
                    if done(i, g).is_break() {
                        return Ok(());
                    }
                }
            }
            values = keep
                .iter()
                .flat_map(|&r| values[r * vocab..(r + 1) * vocab].iter().copied())
                .collect();
            live = keep.iter().map(|&r| live[r]).collect();
            if live.is_empty() {
                cache = None;
            } else {
                c.retain(&keep);
            }
        }
    }
}

/// Hands the prefilled prompts' values to the sink: their real positions (left padding cut),
/// or the last one, which left padding puts at the end of every row.
fn show_prompts<B: Backend>(
    o: &mut Observe<'_>,
    captures: &mut Captures<B>,
    batch: &Batch,
    take: &[usize],
) -> Result<()> {
    for site in o.prompt_sites.clone() {
        let t = captures
            .take(&site)
            .ok_or_else(|| Error::Input(format!("the model did not capture {site}")))?;
        let [rows, seq, width] = t.dims();
        let t = if o.last_only {
            t.slice([0..rows, seq - 1..seq, 0..width])
        } else {
            t
        };
        let data = host(t)?;
        for (b, &index) in take.iter().enumerate() {
            let values = if o.last_only {
                &data[b * width..(b + 1) * width]
            } else {
                &data[(b * seq + batch.start(b)) * width..(b + 1) * seq * width]
            };
            (o.sink)(Seen::Prompt {
                index,
                site,
                values,
            })?;
        }
    }
    Ok(())
}

/// Hands each fed token's values to the sink, as response position `len - 1` of its sequence.
fn show_responses<B: Backend>(
    o: &mut Observe<'_>,
    captures: &mut Captures<B>,
    live: &[usize],
    tokens: &[Vec<u32>],
) -> Result<()> {
    for site in o.response_sites.clone() {
        let t = captures
            .take(&site)
            .ok_or_else(|| Error::Input(format!("the model did not capture {site}")))?;
        let width = t.dims()[2];
        let data = host(t)?;
        for (r, &index) in live.iter().enumerate() {
            (o.sink)(Seen::Response {
                index,
                site,
                position: tokens[index].len() - 1,
                values: &data[r * width..(r + 1) * width],
            })?;
        }
    }
    Ok(())
}

/// The values of a logits tensor, row after row.
fn host<B: Backend>(logits: burn::tensor::Tensor<B, 3>) -> Result<Vec<f32>> {
    logits
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| Error::Input(format!("reading logits: {e:?}")))
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
