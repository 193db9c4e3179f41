//! Generation and capture in one pass: the prefill that starts a prompt's generation also gives
//! its captures, and response positions come from the decoding steps, so no prompt is run twice.
//!
//! The values equal those of `tell capture` on the same prompts (on the prompt for `last`,
//! `mean` and `all`; on prompt + response for `response-mean` and `response-first`): the same
//! sites are read, and the pooling has the same arithmetic ([`tell_store::pool_into`],
//! [`MeanRows`]). Only batching differs (continuous batching instead of length-sorted windows),
//! which changes the order of floating-point sums inside the model, not what is summed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{Llama, Seen, Site};
use tell_store::{
    pool_into, MeanRows, ModelIdentity, Positions, RecordMeta, SiteLayerKey, StoreDtype, StoreSpec,
    StoreWriter,
};

use crate::capture::{head_rows, CaptureReport, Outcome};
use crate::error::{CaptureError, Result};
use crate::sites::Selection;

/// What the one pass stores besides the responses.
#[derive(Debug, Clone)]
pub struct OnePassStore {
    /// The store directory (replaced if it exists).
    pub dir: PathBuf,
    /// Sites and layers.
    pub selection: Selection,
    /// Stored positions.
    pub positions: Positions,
    /// Stored element type.
    pub dtype: StoreDtype,
    /// The model's identity, as `tell capture` records it.
    pub identity: ModelIdentity,
    /// Records per shard (`None`: the store's default).
    pub shard_records: Option<usize>,
    /// Provenance kept in the manifest.
    pub args: serde_json::Value,
}

impl OnePassStore {
    /// Whether the positions are response positions (read at decoding steps).
    pub fn reads_responses(&self) -> bool {
        matches!(
            self.positions,
            Positions::ResponseMean | Positions::ResponseFirst
        )
    }
}

/// A record's values while its sequence runs.
#[derive(Default)]
struct Running {
    /// Pooled prompt values per model site.
    prompt: BTreeMap<Site, Vec<f32>>,
    /// Response values per model site: the first row, or the running mean.
    first: BTreeMap<Site, Vec<f32>>,
    mean: BTreeMap<Site, MeanRows>,
}

/// Collects the values a generation shows and writes them as store records in prompt order.
pub(crate) struct Collector<'a, B: Backend> {
    llama: &'a Llama<B>,
    writer: StoreWriter,
    dir: PathBuf,
    positions: Positions,
    /// Store sites in order, with the model site each is read from.
    sites: Vec<(Site, SiteLayerKey)>,
    /// Sites the model is asked for (`logits` comes from pooled `ln_final`).
    pub(crate) model_sites: Vec<Site>,
    logits: bool,
    metas: Vec<RecordMeta>,
    prompt_lens: Vec<usize>,
    running: HashMap<usize, Running>,
    split: Option<tell_store::Split>,
    done: BTreeMap<usize, (RecordMeta, Vec<Vec<f32>>)>,
    next: usize,
    tokens: u64,
    head_rows: u64,
    start: Instant,
}

impl<'a, B: Backend> Collector<'a, B> {
    /// A collector writing a new store for `metas` (one per prompt; `prompt_lens` tokens each).
    pub(crate) fn new(
        llama: &'a Llama<B>,
        store: &OnePassStore,
        metas: Vec<RecordMeta>,
        prompt_lens: Vec<usize>,
        split: Option<tell_store::Split>,
    ) -> Result<Self> {
        let cfg = llama.config();
        let mut spec = StoreSpec::new(
            store.identity.clone(),
            store.selection.site_specs(cfg.hidden_size, cfg.vocab_size),
            store.selection.layers.iter().map(|&l| l as u32).collect(),
            store.positions,
            store.dtype,
        );
        if let Some(n) = store.shard_records {
            spec.shard_records = n;
        }
        spec.tool_version = concat!("tell-capture ", env!("CARGO_PKG_VERSION")).to_string();
        spec.args = store.args.clone();
        spec.split = split;
        let writer = StoreWriter::create(&store.dir, spec, true)?;
        let sites = store.selection.sites();
        let mut model_sites: Vec<Site> = sites
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| *s != Site::Logits)
            .collect();
        if store.selection.logits && !model_sites.contains(&Site::LnFinal) {
            model_sites.push(Site::LnFinal);
        }
        Ok(Self {
            llama,
            writer,
            dir: store.dir.clone(),
            positions: store.positions,
            sites,
            model_sites,
            logits: store.selection.logits,
            metas,
            prompt_lens,
            running: HashMap::new(),
            split,
            done: BTreeMap::new(),
            next: 0,
            tokens: 0,
            head_rows: 0,
            start: Instant::now(),
        })
    }

    /// Whether only each prompt's last position is needed from the prefill.
    pub(crate) fn last_only(&self) -> bool {
        self.positions != Positions::Mean && self.positions != Positions::All
    }

    /// Whether response positions are read.
    pub(crate) fn reads_responses(&self) -> bool {
        matches!(
            self.positions,
            Positions::ResponseMean | Positions::ResponseFirst
        )
    }

    /// Takes in values the generation shows.
    pub(crate) fn see(&mut self, seen: Seen<'_>) -> tell_llama::Result<()> {
        let width = |site: Site| {
            if site == Site::Logits {
                self.llama.config().vocab_size
            } else {
                self.llama.config().hidden_size
            }
        };
        match seen {
            Seen::Prompt {
                index,
                site,
                values,
            } => {
                if self.reads_responses() {
                    return Ok(());
                }
                let d = width(site);
                let mut pooled = Vec::new();
                pool_into(self.positions, values, d, values.len() / d, 0, &mut pooled)
                    .map_err(|e| tell_llama::Error::Input(e.to_string()))?;
                self.running
                    .entry(index)
                    .or_default()
                    .prompt
                    .insert(site, pooled);
            }
            Seen::Response {
                index,
                site,
                position,
                values,
            } => {
                let r = self.running.entry(index).or_default();
                match self.positions {
                    Positions::ResponseFirst if position == 0 => {
                        r.first.insert(site, values.to_vec());
                    }
                    Positions::ResponseMean => r
                        .mean
                        .entry(site)
                        .or_insert_with(|| MeanRows::new(values.len()))
                        .add(values),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Completes prompt `index`'s record (its response has `n_response` tokens) and writes every
    /// record whose turn has come.
    pub(crate) fn finish(&mut self, index: usize, n_response: usize) -> Result<()> {
        let r = self.running.remove(&index).unwrap_or_default();
        let mut meta = self.metas[index].clone();
        let prompt_len = self.prompt_lens[index];
        let responses = self.reads_responses();
        meta.n_tokens = prompt_len + if responses { n_response } else { 0 };
        meta.n_response_tokens = if responses { n_response } else { 0 };
        if let Some(s) = self.split {
            meta.extra.push((
                tell_store::PROMPT_INDEX.to_string(),
                (s.first + index).to_string(),
            ));
        }
        let mut pooled: BTreeMap<Site, Vec<f32>> = if responses {
            let mut out = BTreeMap::new();
            for site in &self.model_sites {
                let v = match self.positions {
                    Positions::ResponseFirst => r.first.get(site).cloned(),
                    _ => r.mean.get(site).filter(|m| m.count() > 0).map(|m| {
                        let mut v = Vec::new();
                        m.finish_into(&mut v);
                        v
                    }),
                };
                let v = v.ok_or_else(|| CaptureError::Prompt {
                    path: self.dir.clone(),
                    line: index + 1,
                    message: format!("no response values at {site} (an empty response?)"),
                })?;
                out.insert(*site, v);
            }
            out
        } else {
            r.prompt
        };
        if self.logits {
            let normed = pooled
                .get(&Site::LnFinal)
                .ok_or_else(|| CaptureError::Tensor("the model did not capture ln_final".into()))?;
            let (mut logits, rows) = head_rows(self.llama, std::slice::from_ref(normed))?;
            self.head_rows += rows as u64;
            pooled.insert(Site::Logits, logits.remove(0));
        }
        let mut values = Vec::with_capacity(self.sites.len());
        for (site, _) in &self.sites {
            values.push(pooled.remove(site).ok_or_else(|| {
                CaptureError::Tensor(format!("the model did not capture {site}"))
            })?);
        }
        self.done.insert(index, (meta, values));
        while let Some((meta, values)) = self.done.remove(&self.next) {
            self.tokens += meta.n_tokens as u64;
            let pairs: Vec<(SiteLayerKey, &[f32])> = self
                .sites
                .iter()
                .zip(&values)
                .map(|((_, k), v)| (k.clone(), v.as_slice()))
                .collect();
            self.writer.push_record(meta, &pairs)?;
            self.next += 1;
        }
        Ok(())
    }

    /// Marks the store complete once every record is written.
    pub(crate) fn close(self, prompts: usize) -> Result<CaptureReport> {
        if self.next != self.metas.len() {
            return Err(CaptureError::Options(format!(
                "{}: {} of {} records were written",
                self.dir.display(),
                self.next,
                self.metas.len()
            )));
        }
        let records = self.writer.finish()?.record_count;
        Ok(CaptureReport {
            dir: self.dir,
            outcome: Outcome::Complete,
            prompts,
            resumed_from: 0,
            records,
            tokens: self.tokens,
            head_rows: self.head_rows,
            seconds: self.start.elapsed().as_secs_f64(),
        })
    }
}
