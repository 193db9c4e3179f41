//! Capture sites: where in the model a value is read, named as TransformerLens names them.
//!
//! | site | value |
//! |---|---|
//! | `blocks.{l}.hook_resid_pre` | residual stream entering block `l` (the embeddings for `l = 0`) |
//! | `blocks.{l}.hook_attn_out` | output of block `l`'s attention, after `o_proj` |
//! | `blocks.{l}.hook_resid_mid` | `resid_pre + attn_out` |
//! | `blocks.{l}.hook_mlp_out` | output of block `l`'s MLP, after `down_proj` |
//! | `blocks.{l}.hook_resid_post` | `resid_mid + mlp_out`, the residual leaving block `l` |
//! | `ln_final` | the last `resid_post` after the final RMSNorm (HF's last `hidden_states`) |
//! | `logits` | unnormalised next-token scores |
//!
//! `resid_post` of the last block is *before* the final norm; HF's `hidden_states[l + 1]` equals
//! `blocks.{l}.hook_resid_post` for every layer but the last, whose HF entry is `ln_final`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where inside a block a value is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    ResidPre,
    AttnOut,
    ResidMid,
    MlpOut,
    ResidPost,
}

impl Hook {
    /// All hooks, in the order they are computed inside a block.
    pub const ALL: [Hook; 5] = [
        Hook::ResidPre,
        Hook::AttnOut,
        Hook::ResidMid,
        Hook::MlpOut,
        Hook::ResidPost,
    ];

    /// The short name (`resid_post`, ...).
    pub fn short(self) -> &'static str {
        match self {
            Hook::ResidPre => "resid_pre",
            Hook::AttnOut => "attn_out",
            Hook::ResidMid => "resid_mid",
            Hook::MlpOut => "mlp_out",
            Hook::ResidPost => "resid_post",
        }
    }

    /// Parses a short name, with or without the `hook_` prefix.
    pub fn parse(s: &str) -> Option<Hook> {
        let s = s.strip_prefix("hook_").unwrap_or(s);
        Hook::ALL.into_iter().find(|h| h.short() == s)
    }
}

/// A named capture site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// A value inside block `layer`.
    Block { layer: usize, hook: Hook },
    /// The final RMSNorm's output.
    LnFinal,
    /// The logits.
    Logits,
}

impl Site {
    /// `blocks.{layer}.hook_resid_post`.
    pub fn resid_post(layer: usize) -> Self {
        Site::Block {
            layer,
            hook: Hook::ResidPost,
        }
    }

    /// Checks that the site exists in a model with `num_layers` blocks.
    pub fn check(self, num_layers: usize) -> Result<Self, Error> {
        match self {
            Site::Block { layer, .. } if layer >= num_layers => Err(Error::Site {
                site: self.to_string(),
                reason: format!(
                    "layer {layer} is out of range: the model has layers 0..={}",
                    num_layers - 1
                ),
            }),
            _ => Ok(self),
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Site::Block { layer, hook } => write!(f, "blocks.{layer}.hook_{}", hook.short()),
            Site::LnFinal => f.write_str("ln_final"),
            Site::Logits => f.write_str("logits"),
        }
    }
}

impl FromStr for Site {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::Site {
            site: s.to_owned(),
            reason: reason.to_owned(),
        };
        match s {
            "ln_final" => return Ok(Site::LnFinal),
            "logits" => return Ok(Site::Logits),
            _ => {}
        }
        let rest = s
            .strip_prefix("blocks.")
            .ok_or_else(|| err("expected `blocks.{layer}.hook_{name}`, `ln_final` or `logits`"))?;
        let (layer, hook) = rest
            .split_once('.')
            .ok_or_else(|| err("expected `blocks.{layer}.hook_{name}`"))?;
        let layer: usize = layer
            .parse()
            .map_err(|_| err("the layer must be a non-negative integer"))?;
        let hook = hook
            .strip_prefix("hook_")
            .and_then(Hook::parse)
            .ok_or_else(|| {
                err("unknown hook; expected hook_resid_pre, hook_attn_out, hook_resid_mid, hook_mlp_out or hook_resid_post")
            })?;
        Ok(Site::Block { layer, hook })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "blocks.0.hook_resid_pre",
            "blocks.12.hook_attn_out",
            "blocks.3.hook_resid_mid",
            "blocks.7.hook_mlp_out",
            "blocks.31.hook_resid_post",
            "ln_final",
            "logits",
        ] {
            let site: Site = name.parse().unwrap();
            assert_eq!(site.to_string(), name);
        }
    }

    #[test]
    fn bad_names_are_errors() {
        for name in [
            "blocks.x.hook_resid_post",
            "blocks.1.resid_post",
            "resid",
            "blocks.1",
        ] {
            let err = name.parse::<Site>().unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        let err = Site::resid_post(4).check(4).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
    }
}
