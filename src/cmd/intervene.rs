//! The intervention options shared by the commands that run the model (`--intervene`, `--edit`,
//! and `--patch-from` where many prompts run).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tell_intervene::Spec;
use tell_llama::{Intervention, LlamaConfig};

/// `--intervene SPEC.toml` and `--edit "OP key=value ..."`.
#[derive(clap::Args, Debug, Default)]
pub struct EditArgs {
    /// An intervention spec: a TOML file of [[edit]] tables (op, site, layers, positions, alpha,
    /// vector, sigma, seed).
    #[arg(long, value_name = "SPEC.toml")]
    pub intervene: Option<PathBuf>,
    /// One edit, e.g. "add site=resid_post layers=3 positions=last alpha=4 vector=PROBE_DIR",
    /// "ablate site=resid_pre layers=all vector=v.npy", "noise site=resid_post layers=all
    /// sigma=0.5 seed=1"; repeatable, applied after --intervene's edits.
    #[arg(long, value_name = "EDIT")]
    pub edit: Vec<String>,
}

impl EditArgs {
    /// The resolved intervention, or `None` when no edit was given.
    pub fn resolve(&self, cfg: &LlamaConfig) -> Result<Option<Intervention>> {
        let mut spec = match &self.intervene {
            Some(path) => Spec::from_file(path)?,
            None => Spec::default(),
        };
        spec.extend(Spec::from_args(&self.edit)?);
        if spec.edits.is_empty() {
            return Ok(None);
        }
        Ok(Some(spec.resolve(cfg)?))
    }
}

/// `--intervene`, `--edit` and `--patch-from`, for the commands that run many prompts.
#[derive(clap::Args, Debug, Default)]
pub struct PatchEditArgs {
    #[command(flatten)]
    pub edits: EditArgs,
    /// Values for `patch` edits: a prompts file (JSONL; line i patches prompt i) or a store
    /// captured with --positions all (record i patches prompt i).
    #[arg(long, value_name = "FILE.jsonl|STORE")]
    pub patch_from: Option<PathBuf>,
}

impl PatchEditArgs {
    /// Whether no edit, spec or patch source was given.
    pub fn is_empty(&self) -> bool {
        self.edits.intervene.is_none() && self.edits.edit.is_empty() && self.patch_from.is_none()
    }

    /// The resolved intervention; `--patch-from` without a patch edit is refused.
    pub fn resolve(&self, cfg: &LlamaConfig) -> Result<Option<Intervention>> {
        let iv = self.edits.resolve(cfg)?;
        if let Some(p) = &self.patch_from {
            if !iv.as_ref().is_some_and(|iv| iv.patches()) {
                bail!("--patch-from {} is given but no edit patches", p.display());
            }
        }
        Ok(iv)
    }

    /// The identity hash of the model at `model` when `--patch-from` names a store (whose
    /// values must come from the same model).
    pub fn patch_model_hash(&self, model: &Path) -> Result<Option<String>> {
        match &self.patch_from {
            Some(p) if tell_capture::is_store(p) => {
                let ck = tell_llama::Checkpoint::open(model)?;
                Ok(Some(tell_capture::model_identity(&ck).hash))
            }
            _ => Ok(None),
        }
    }
}
