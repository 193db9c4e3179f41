//! `--sites` and `--layers`: which values to capture, checked against the model.
//!
//! Sites are short names (`resid_post`, `attn_out`, `resid_pre`, `resid_mid`, `mlp_out`,
//! `ln_final`, `logits`), hook names (`hook_resid_post`) or full TransformerLens names
//! (`blocks.12.hook_resid_post`, which also selects layer 12 when `--layers` is not given). The
//! store holds every requested hook at every requested layer.

use tell_llama::{Hook, Site};
use tell_store::{SiteLayerKey, SiteSpec};

use crate::error::{CaptureError, Result};

/// The capture plan: hooks at layers, plus model-level sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Per-block hooks, in the order given.
    pub hooks: Vec<Hook>,
    /// Layers of the per-block hooks, ascending (empty when there are no hooks).
    pub layers: Vec<usize>,
    /// Whether `ln_final` is captured.
    pub ln_final: bool,
    /// Whether `logits` is captured.
    pub logits: bool,
}

const SITE_HELP: &str = "expected resid_pre, attn_out, resid_mid, mlp_out, resid_post, \
                         ln_final, logits, hook_<name> or blocks.<layer>.hook_<name>";

/// Parses `--layers` (`all`, or a comma list of layers and `a-b` ranges) for a model with
/// `num_layers` blocks; the result is ascending without duplicates.
pub fn parse_layers(spec: &str, num_layers: usize) -> Result<Vec<usize>> {
    let spec = spec.trim();
    if spec == "all" {
        return Ok((0..num_layers).collect());
    }
    let bad = |m: String| CaptureError::Options(format!("--layers {spec:?}: {m}"));
    let num = |s: &str| -> Result<usize> {
        let l: usize = s.trim().parse().map_err(|_| {
            bad(format!(
                "{s:?} is not a layer number (expected all, or e.g. 0,4,8-12)"
            ))
        })?;
        if l >= num_layers {
            return Err(bad(format!(
                "layer {l} is out of range: the model has layers 0..={}",
                num_layers.saturating_sub(1)
            )));
        }
        Ok(l)
    };
    let mut out = Vec::new();
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad(format!("range {a}-{b} is backwards")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Builds the selection from `--sites` names and the optional `--layers` spec.
pub fn select(sites: &[String], layers: Option<&str>, num_layers: usize) -> Result<Selection> {
    let mut sel = Selection {
        hooks: Vec::new(),
        layers: Vec::new(),
        ln_final: false,
        logits: false,
    };
    let mut named_layers = Vec::new();
    let names: Vec<&str> = if sites.is_empty() {
        vec!["resid_post"]
    } else {
        sites.iter().map(|s| s.trim()).collect()
    };
    for name in names {
        let hook = match name {
            "ln_final" => {
                sel.ln_final = true;
                continue;
            }
            "logits" => {
                sel.logits = true;
                continue;
            }
            _ if name.starts_with("blocks.") => {
                let site: Site = name.parse().map_err(|e: tell_llama::Error| {
                    CaptureError::Options(format!("unknown site {name:?}: {e}"))
                })?;
                match site {
                    Site::Block { layer, hook } => {
                        if layer >= num_layers {
                            return Err(CaptureError::Options(format!(
                                "site {name:?}: layer {layer} is out of range: the model has layers 0..={}",
                                num_layers.saturating_sub(1)
                            )));
                        }
                        named_layers.push(layer);
                        hook
                    }
                    other => {
                        return Err(CaptureError::Options(format!(
                            "site {name:?} parsed as {other}, not a block site"
                        )))
                    }
                }
            }
            _ => Hook::parse(name).ok_or_else(|| {
                CaptureError::Options(format!("unknown site {name:?} ({SITE_HELP})"))
            })?,
        };
        if !sel.hooks.contains(&hook) {
            sel.hooks.push(hook);
        }
    }
    if !sel.hooks.is_empty() {
        sel.layers = match layers {
            Some(spec) => parse_layers(spec, num_layers)?,
            None if !named_layers.is_empty() => {
                named_layers.sort_unstable();
                named_layers.dedup();
                named_layers
            }
            None => (0..num_layers).collect(),
        };
    }
    Ok(sel)
}

impl Selection {
    /// Every model site to capture, with the store key it is written under.
    pub fn sites(&self) -> Vec<(Site, SiteLayerKey)> {
        let mut out = Vec::new();
        for &hook in &self.hooks {
            for &layer in &self.layers {
                out.push((
                    Site::Block { layer, hook },
                    SiteLayerKey::new(&hook_name(hook), layer as u32),
                ));
            }
        }
        if self.ln_final {
            out.push((Site::LnFinal, SiteLayerKey::global("ln_final")));
        }
        if self.logits {
            out.push((Site::Logits, SiteLayerKey::global("logits")));
        }
        out
    }

    /// The store's site list, with widths (`hidden` for residual sites, `vocab` for logits).
    pub fn site_specs(&self, hidden: usize, vocab: usize) -> Vec<SiteSpec> {
        let mut out: Vec<SiteSpec> = self
            .hooks
            .iter()
            .map(|&h| SiteSpec::block(&hook_name(h), hidden))
            .collect();
        if self.ln_final {
            out.push(SiteSpec::global("ln_final", hidden));
        }
        if self.logits {
            out.push(SiteSpec::global("logits", vocab));
        }
        out
    }
}

/// `hook_resid_post` etc.
pub(crate) fn hook_name(h: Hook) -> String {
    format!("hook_{}", h.short())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn layers_parse_ranges_and_all() {
        assert_eq!(parse_layers("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(
            parse_layers("8-10,0,4,9", 12).unwrap(),
            vec![0, 4, 8, 9, 10]
        );
        for (spec, want) in [
            (
                "12",
                "layer 12 is out of range: the model has layers 0..=11",
            ),
            ("3-1", "backwards"),
            ("x", "not a layer number"),
            ("", "not a layer number"),
        ] {
            let err = parse_layers(spec, 12).unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn short_hook_and_full_names() {
        let s = select(
            &names(&["resid_post", "hook_attn_out", "ln_final"]),
            Some("1"),
            4,
        )
        .unwrap();
        assert_eq!(s.hooks, vec![Hook::ResidPost, Hook::AttnOut]);
        assert_eq!(s.layers, vec![1]);
        let keys: Vec<String> = s.sites().iter().map(|(_, k)| k.tensor_name()).collect();
        assert_eq!(
            keys,
            [
                "blocks.1.hook_resid_post",
                "blocks.1.hook_attn_out",
                "ln_final"
            ]
        );
        let s = select(
            &names(&["blocks.2.hook_mlp_out", "blocks.0.hook_mlp_out"]),
            None,
            4,
        )
        .unwrap();
        assert_eq!((s.hooks, s.layers), (vec![Hook::MlpOut], vec![0, 2]));
        let s = select(&[], None, 2).unwrap();
        assert_eq!((s.hooks, s.layers), (vec![Hook::ResidPost], vec![0, 1]));
    }

    #[test]
    fn unknown_sites_and_layers_are_errors() {
        let err = select(&names(&["resid"]), None, 4).unwrap_err().to_string();
        assert!(err.contains("unknown site \"resid\""), "{err}");
        let err = select(&names(&["blocks.9.hook_resid_post"]), None, 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 9 is out of range"), "{err}");
        let err = select(&names(&["blocks.1.hook_nope"]), None, 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown site"), "{err}");
    }
}
