//! Errors of reading intervention specs, their vectors and patch sources.

use std::path::PathBuf;

/// Everything that can go wrong before or while intervening.
#[derive(Debug, thiserror::Error)]
pub enum InterveneError {
    /// A spec (TOML file or `--edit` text) is malformed; names the spec and the field.
    #[error("{spec}: {field}: {message}")]
    Spec {
        spec: String,
        field: String,
        message: String,
    },
    /// A vector file cannot be read or has the wrong shape.
    #[error("{path}: {message}")]
    Vector { path: PathBuf, message: String },
    /// A patch source does not fit its targets.
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },
    /// A file cannot be read or written.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] tell_llama::Error),
    /// Reading or encoding prompts failed.
    #[error(transparent)]
    Capture(#[from] tell_capture::CaptureError),
}

/// Result with [`InterveneError`].
pub type Result<T, E = InterveneError> = std::result::Result<T, E>;
