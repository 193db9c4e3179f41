//! The error type of `tell run`: the stage errors it passes on, plus its own input checks.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = RunError> = std::result::Result<T, E>;

/// Everything that can stop a run; files of the stages already done stay in the run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An input file or directory does not exist.
    #[error("{what} {path} does not exist")]
    Missing {
        /// What it should have been (`suite`, `model`).
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// The output directory holds something a fresh run must not overwrite.
    #[error("{path}: {message}")]
    OutDir {
        /// The run directory.
        path: PathBuf,
        /// What is there and what to do about it.
        message: String,
    },
    /// A run file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An option is out of range.
    #[error("{0}")]
    Options(String),
    /// Rendering, scoring, statistics or labels failed.
    #[error(transparent)]
    Faking(#[from] tell_faking::Error),
    /// Generation or capture failed.
    #[error(transparent)]
    Capture(#[from] tell_capture::CaptureError),
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] tell_llama::Error),
    /// The tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] tell_tokenizer::TokenizerError),
    /// The activation store could not be read.
    #[error(transparent)]
    Store(#[from] tell_store::Error),
    /// Probe training failed for another reason than too few labels.
    #[error(transparent)]
    Probe(#[from] tell_probe::ProbeError),
}

impl RunError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
