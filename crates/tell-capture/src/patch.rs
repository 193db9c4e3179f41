//! Patch sources: the values of other prompts' runs that `patch` edits copy in.
//!
//! A source is either a paired prompts file (line i patches prompt i; its prompts run through
//! the model, unedited, batch by batch as the targets need them) or a store captured with
//! `--positions all` (record i patches prompt i; nothing is recomputed). Either way the values
//! are made for one batch of targets at a time, so a long run never holds every source in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tell_llama::burn::tensor::backend::Backend;
use tell_llama::{Batch, Llama, Logits, PatchValues, Site};
use tell_store::{Positions, SiteLayerKey, Store};

use crate::error::{CaptureError, Result};
use crate::sites::hook_name;

/// Runs each source sequence and keeps its values at `sites` as patch values (one per line).
pub fn patch_sources<B: Backend>(
    llama: &Llama<B>,
    sources: &[Vec<u32>],
    sites: &[Site],
    batch_size: usize,
) -> tell_llama::Result<Vec<Arc<PatchValues>>> {
    let d = llama.config().hidden_size;
    let mut out = Vec::with_capacity(sources.len());
    for chunk in sources.chunks(batch_size.max(1)) {
        let batch = Batch::left_padded(chunk, 0)?;
        let mut output = llama.forward(&batch, sites, Logits::None)?;
        let mut values: Vec<PatchValues> =
            chunk.iter().map(|s| PatchValues::new(s.len())).collect();
        for site in sites {
            let t = output
                .captures
                .take(site)
                .ok_or_else(|| tell_llama::Error::Input(format!("no capture at {site}")))?;
            let data = t
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| tell_llama::Error::Input(format!("reading {site}: {e:?}")))?;
            for (b, v) in values.iter_mut().enumerate() {
                let from = (b * batch.seq + batch.start(b)) * d;
                v.insert(*site, data[from..(b + 1) * batch.seq * d].to_vec())?;
            }
        }
        out.extend(values.into_iter().map(Arc::new));
    }
    Ok(out)
}

/// Where `patch` edits take their values from, checked against the targets.
pub enum PatchSource {
    /// Paired prompts, already tokenized (line i patches prompt i).
    Prompts {
        /// The file, for messages.
        path: PathBuf,
        /// Tokens of each line.
        tokens: Vec<Vec<u32>>,
    },
    /// A store with every position of every patched site (record i patches prompt i).
    Store {
        /// The store.
        store: Box<Store>,
        /// The store key of each patched site.
        keys: Vec<(Site, SiteLayerKey)>,
    },
}

/// Whether `path` is a store directory (rather than a prompts file).
pub fn is_store(path: &Path) -> bool {
    path.join("manifest.json").is_file()
}

impl PatchSource {
    /// Paired prompts: `tokens[i]` patches target i; the count must equal `targets`.
    pub fn prompts(path: &Path, tokens: Vec<Vec<u32>>, targets: usize) -> Result<Self> {
        if tokens.len() != targets {
            return Err(CaptureError::Prompt {
                path: path.to_owned(),
                line: tokens.len().min(targets) + 1,
                message: format!(
                    "{} source prompts for {targets} target prompts: line i patches prompt i",
                    tokens.len()
                ),
            });
        }
        Ok(Self::Prompts {
            path: path.to_owned(),
            tokens,
        })
    }

    /// A store captured with `--positions all` holding every site in `sites`, one complete
    /// record per target, of a model of width `hidden` (and, when given, of this identity hash).
    pub fn store(
        dir: &Path,
        sites: &[Site],
        targets: usize,
        hidden: usize,
        model_hash: Option<&str>,
    ) -> Result<Self> {
        let bad = |message: String| {
            CaptureError::Options(format!("patch source {}: {message}", dir.display()))
        };
        let store = Store::open(dir)?;
        let m = store.manifest();
        if m.positions != Positions::All {
            return Err(bad(format!(
                "it holds positions {}; a patch source needs every token: capture it with \
                 --positions all",
                m.positions.as_str()
            )));
        }
        if !m.complete {
            return Err(bad(
                "it is not complete (a capture still running or stopped): finish it with \
                 --resume"
                    .into(),
            ));
        }
        if store.len() != targets {
            return Err(bad(format!(
                "{} records for {targets} target prompts: record i patches prompt i",
                store.len()
            )));
        }
        if let Some(hash) = model_hash {
            if m.model.hash != hash {
                return Err(bad(format!(
                    "it was captured from another model ({}, identity {}), not this one \
                     (identity {hash})",
                    m.model.name, m.model.hash
                )));
            }
        }
        let mut keys = Vec::new();
        for site in sites {
            let Site::Block { layer, hook } = *site else {
                return Err(bad(format!("{site} cannot be patched")));
            };
            let key = SiteLayerKey::new(&hook_name(hook), layer as u32);
            let width = store.width(&key).map_err(|_| {
                bad(format!(
                    "it has no {key} (it has: {})",
                    store
                        .keys()
                        .iter()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if width != hidden {
                return Err(bad(format!(
                    "{key} has width {width}, the model's hidden size is {hidden}"
                )));
            }
            keys.push((*site, key));
        }
        Ok(Self::Store {
            store: Box::new(store),
            keys,
        })
    }

    /// The patch values of targets `indices` (global prompt indices), at `sites`.
    pub fn values<B: Backend>(
        &self,
        llama: &Llama<B>,
        indices: &[usize],
        sites: &[Site],
        batch_size: usize,
    ) -> Result<Vec<Arc<PatchValues>>> {
        match self {
            PatchSource::Prompts { path, tokens } => {
                let seqs: Vec<Vec<u32>> = indices.iter().map(|&i| tokens[i].clone()).collect();
                patch_sources(llama, &seqs, sites, batch_size).map_err(|e| {
                    CaptureError::Options(format!(
                        "running the patch sources of {}: {e}",
                        path.display()
                    ))
                })
            }
            PatchSource::Store { store, keys } => {
                let mut out = Vec::with_capacity(indices.len());
                for &i in indices {
                    let mut v: Option<PatchValues> = None;
                    for (site, key) in keys {
                        let m = store.record(i, key)?;
                        let pv = v.get_or_insert_with(|| PatchValues::new(m.rows));
                        pv.insert(*site, m.data)?;
                    }
                    out.push(Arc::new(v.unwrap_or_default()));
                }
                Ok(out)
            }
        }
    }
}
