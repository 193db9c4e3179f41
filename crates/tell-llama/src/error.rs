//! Errors of loading and running a model.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// `config.json` is not valid JSON or misses a required field.
    #[error("{path}: malformed config: {reason}")]
    Config { path: PathBuf, reason: String },
    /// `config.json` asks for something this implementation does not do.
    #[error("{path}: unsupported config: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// `model.safetensors.index.json` is malformed or inconsistent.
    #[error("{path}: malformed weights index: {reason}")]
    Index { path: PathBuf, reason: String },
    /// A safetensors file is truncated or its header is corrupt.
    #[error("{path}: not a valid safetensors file (truncated or corrupt?): {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A tensor the architecture needs is not in the checkpoint.
    #[error("tensor `{name}` is missing from {path}")]
    MissingTensor { name: String, path: PathBuf },
    /// A tensor has another shape than the config implies.
    #[error("tensor `{name}` in {path} has shape {actual:?}, the config implies {expected:?}")]
    Shape {
        name: String,
        path: PathBuf,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    /// A tensor is stored in a dtype that cannot be loaded as floats.
    #[error(
        "tensor `{name}` in {path} is stored as {dtype}; only F32, F16 and BF16 are supported"
    )]
    Dtype {
        name: String,
        path: PathBuf,
        dtype: String,
    },
    /// The directory holds no weights this loader knows.
    #[error("{path}: no model.safetensors or model.safetensors.index.json found")]
    NoWeights { path: PathBuf },
    /// A GGUF file is corrupt, truncated or not a LLaMA model.
    #[error("{path}: {reason}")]
    Gguf { path: PathBuf, reason: String },
    /// A capture site name could not be parsed or is out of range.
    #[error("bad capture site `{site}`: {reason}")]
    Site { site: String, reason: String },
    /// Inputs to the forward pass are inconsistent.
    #[error("bad input: {0}")]
    Input(String),
    /// The device cannot run the model: an unknown `--device` or `--compute-dtype`, a build
    /// without CUDA, no usable driver or GPU, or a GPU operation that failed.
    #[error("{0}")]
    Device(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
