//! Token-level probe monitoring: every generated token scored by linear probes while it is
//! generated, from the values the decoding step computes anyway (no second forward pass).
//!
//! Each probe (a directory written by `tell probe train`) reads its own site and layer. A token's
//! score is the probe's score of that token's row at the site: the row of the decoding step that
//! feeds the token, the same row a capture of prompt + response holds at the token's position (so
//! the scores equal `tell probe apply` on a `--positions all` capture of the same tokens). The
//! monitor file has one line per response, in prompt order:
//!
//! ```text
//! {"id": "...", "tokens": [ids], "pieces": ["text of each token"],
//!  "probes": {"NAME": {"scores": [...], "mean": m, "max": x, "last": l}}}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use tell_llama::{LlamaConfig, Seen, Site};
use tell_probe::{Matrix, ProbeArtifact};
use tell_tokenizer::Tokenizer;

use crate::error::{CaptureError, Result};

/// One probe of a monitor.
#[derive(Debug, Clone)]
pub struct MonitorProbe {
    /// The name its scores go under (the path as given).
    pub name: String,
    /// The probe directory.
    pub path: PathBuf,
    /// The site it reads.
    pub site: Site,
    /// The probe.
    pub artifact: ProbeArtifact,
}

/// Probes that score every generated token.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    /// The probes, in the order given.
    pub probes: Vec<MonitorProbe>,
}

impl Monitor {
    /// Loads probe directories and checks them against the model (site, layer, width).
    pub fn load(paths: &[PathBuf], cfg: &LlamaConfig) -> Result<Self> {
        let mut probes = Vec::new();
        for path in paths {
            let bad = |message: String| {
                CaptureError::Options(format!("--monitor {}: {message}", path.display()))
            };
            let artifact =
                ProbeArtifact::load(path).map_err(|e| bad(format!("not a probe: {e}")))?;
            // probe.json names the store's site (`hook_resid_post`) and the layer apart.
            let meta = &artifact.meta;
            let full = if meta.site.starts_with("hook_") {
                format!("blocks.{}.{}", meta.layer, meta.site)
            } else {
                meta.site.clone()
            };
            let site: Site = full
                .parse()
                .map_err(|e| bad(format!("its site {full:?}: {e}")))?;
            match site {
                Site::Block { layer, .. } if layer >= cfg.num_layers => {
                    return Err(bad(format!(
                        "it reads layer {layer}, the model has {} layers",
                        cfg.num_layers
                    )))
                }
                Site::Block { .. } | Site::LnFinal => {}
                Site::Logits => return Err(bad("a probe on logits cannot be monitored".into())),
            }
            if artifact.meta.n_features != cfg.hidden_size {
                return Err(bad(format!(
                    "it reads {} features, the model's hidden size is {}",
                    artifact.meta.n_features, cfg.hidden_size
                )));
            }
            probes.push(MonitorProbe {
                name: path.display().to_string(),
                path: path.clone(),
                site,
                artifact,
            });
        }
        Ok(Self { probes })
    }

    /// The sites the probes read.
    pub fn sites(&self) -> Vec<Site> {
        let mut s: Vec<Site> = self.probes.iter().map(|p| p.site).collect();
        s.sort();
        s.dedup();
        s
    }

    /// Whether there is no probe.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }
}

/// Per-response aggregates of one probe's token scores.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Aggregates {
    /// Mean over the response's tokens.
    pub mean: f64,
    /// Largest token score.
    pub max: f64,
    /// The last token's score.
    pub last: f64,
}

impl Aggregates {
    /// The aggregates of some scores (`None` for none).
    pub fn of(scores: &[f64]) -> Option<Self> {
        let last = *scores.last()?;
        Some(Self {
            mean: scores.iter().sum::<f64>() / scores.len() as f64,
            max: scores.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            last,
        })
    }
}

/// Scores tokens as the generation shows them and writes the monitor file in prompt order.
pub(crate) struct Scorer<'a> {
    monitor: &'a Monitor,
    tokenizer: &'a Tokenizer,
    path: PathBuf,
    writer: BufWriter<File>,
    /// Per running prompt: per probe, scores by response position.
    running: HashMap<usize, Vec<Vec<f64>>>,
    done: BTreeMap<usize, String>,
    next: usize,
}

impl<'a> Scorer<'a> {
    pub(crate) fn new(monitor: &'a Monitor, tokenizer: &'a Tokenizer, path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| CaptureError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Ok(Self {
            monitor,
            tokenizer,
            path: path.to_owned(),
            writer: BufWriter::new(file),
            running: HashMap::new(),
            done: BTreeMap::new(),
            next: 0,
        })
    }

    /// Scores one token's row at a site with every probe reading that site.
    pub(crate) fn see(&mut self, seen: Seen<'_>) -> tell_llama::Result<()> {
        let Seen::Response {
            index,
            site,
            position,
            values,
        } = seen
        else {
            return Ok(());
        };
        let n = self.monitor.probes.len();
        for (p, probe) in self.monitor.probes.iter().enumerate() {
            if probe.site != site {
                continue;
            }
            let x = Matrix::new(values, 1, values.len())
                .map_err(|e| tell_llama::Error::Input(e.to_string()))?;
            let score = probe
                .artifact
                .probe
                .apply(&x)
                .map_err(|e| tell_llama::Error::Input(format!("probe {}: {e}", probe.name)))?[0];
            let scores = &mut self
                .running
                .entry(index)
                .or_insert_with(|| vec![Vec::new(); n])[p];
            if scores.len() != position {
                return Err(tell_llama::Error::Input(format!(
                    "monitor: response token {position} of prompt {index} arrived after {}",
                    scores.len()
                )));
            }
            scores.push(score);
        }
        Ok(())
    }

    /// Completes prompt `index` (id `id`, new tokens `tokens`) and writes every line whose turn
    /// has come.
    pub(crate) fn finish(&mut self, index: usize, id: &str, tokens: &[u32]) -> Result<()> {
        let scores = self
            .running
            .remove(&index)
            .unwrap_or_else(|| vec![Vec::new(); self.monitor.probes.len()]);
        let mut probes = serde_json::Map::new();
        for (probe, s) in self.monitor.probes.iter().zip(&scores) {
            if s.len() != tokens.len() {
                return Err(CaptureError::Options(format!(
                    "monitor: {} scores for {} tokens of {id}",
                    s.len(),
                    tokens.len()
                )));
            }
            let agg = Aggregates::of(s);
            probes.insert(
                probe.name.clone(),
                json!({
                    "scores": s,
                    "mean": agg.map(|a| a.mean),
                    "max": agg.map(|a| a.max),
                    "last": agg.map(|a| a.last),
                }),
            );
        }
        let line = json!({
            "id": id,
            "tokens": tokens,
            "pieces": pieces(self.tokenizer, tokens),
            "probes": probes,
        });
        self.done.insert(index, line.to_string());
        while let Some(line) = self.done.remove(&self.next) {
            writeln!(self.writer, "{line}").map_err(|e| CaptureError::Io {
                path: self.path.clone(),
                source: e,
            })?;
            self.next += 1;
        }
        self.writer.flush().map_err(|e| CaptureError::Io {
            path: self.path.clone(),
            source: e,
        })
    }
}

/// The text each token adds: the decoded text through it minus the text before it (over a
/// window of the 4 tokens before it, as long as a character's bytes can be), with an unfinished
/// character left to the token that completes it.
fn pieces(tokenizer: &Tokenizer, tokens: &[u32]) -> Vec<String> {
    let text = |t: &[u32]| {
        let s = tokenizer.decode(t, false).unwrap_or_default();
        s.trim_end_matches('\u{FFFD}').to_string()
    };
    (0..tokens.len())
        .map(|i| {
            let j = i.saturating_sub(4);
            let (before, now) = (text(&tokens[j..i]), text(&tokens[j..=i]));
            let common = before
                .char_indices()
                .zip(now.chars())
                .find(|((_, a), b)| a != b)
                .map_or(before.len().min(now.len()), |((k, _), _)| k);
            now.get(common..).unwrap_or("").to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_are_mean_max_last() {
        let a = Aggregates::of(&[1.0, -2.0, 4.0, 1.0]).unwrap();
        assert_eq!((a.mean, a.max, a.last), (1.0, 4.0, 1.0));
        assert!(Aggregates::of(&[]).is_none());
    }
}
