//! A model checkpoint on disk, whatever its format: config and a source of named tensors.

use std::path::{Path, PathBuf};

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::gguf::GgufSource;
use crate::weights::{TensorSource, Weights};

/// The on-disk format of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Hugging Face directory: `config.json` + safetensors.
    Safetensors,
    /// A single GGUF file (weights, config and tokenizer).
    Gguf,
}

/// An opened checkpoint.
pub struct Checkpoint {
    /// The directory or file it was opened from.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// The architecture.
    pub config: LlamaConfig,
    source: Source,
}

enum Source {
    Safetensors(Weights),
    Gguf(Box<GgufSource>),
}

impl Checkpoint {
    /// Opens a Hugging Face checkpoint directory or a `.gguf` file.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            let source = GgufSource::open(path)?;
            return Ok(Self {
                path: path.to_owned(),
                format: Format::Gguf,
                config: source.config()?,
                source: Source::Gguf(Box::new(source)),
            });
        }
        if !path.is_dir() {
            return Err(Error::Io {
                path: path.to_owned(),
                err: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such checkpoint directory or GGUF file",
                ),
            });
        }
        let config = LlamaConfig::from_file(&path.join("config.json"))?;
        let weights = Weights::open_dir(path)?;
        Ok(Self {
            path: path.to_owned(),
            format: Format::Safetensors,
            config,
            source: Source::Safetensors(weights),
        })
    }

    /// Where the tensors come from.
    pub fn source(&self) -> &dyn TensorSource {
        match &self.source {
            Source::Safetensors(w) => w,
            Source::Gguf(g) => g.as_ref(),
        }
    }

    /// The GGUF file, when the checkpoint is one (for its embedded tokenizer).
    pub fn gguf(&self) -> Option<&GgufSource> {
        match &self.source {
            Source::Gguf(g) => Some(g.as_ref()),
            Source::Safetensors(_) => None,
        }
    }
}
