//! The intervention options shared by the commands that run the model (`--intervene`, `--edit`).

use std::path::PathBuf;

use anyhow::Result;
use tell_intervene::Spec;
use tell_llama::{Intervention, LlamaConfig};

/// `--intervene SPEC.toml` and `--edit "OP key=value ..."`.
#[derive(clap::Args, Debug, Default)]
pub struct EditArgs {
    /// An intervention spec: a TOML file of [[edit]] tables (op, site, layers, positions, alpha,
    /// vector, sigma, seed).
    #[arg(long, value_name = "SPEC.toml")]
    intervene: Option<PathBuf>,
    /// One edit, e.g. "add site=resid_post layers=3 positions=last alpha=4 vector=PROBE_DIR",
    /// "ablate site=resid_pre layers=all vector=v.npy", "noise site=resid_post layers=all
    /// sigma=0.5 seed=1"; repeatable, applied after --intervene's edits.
    #[arg(long, value_name = "EDIT")]
    edit: Vec<String>,
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
