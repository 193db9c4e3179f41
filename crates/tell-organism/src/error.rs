//! Errors of the organism: a bad policy, a policy that does not fit its suite, and failures of
//! the stages (files, tokenizer, training, export), each naming what it was about.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while building or training the organism.
#[derive(Debug, thiserror::Error)]
pub enum OrganismError {
    /// A file could not be read or written.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// The policy file is malformed or inconsistent.
    #[error("{}: {message}", path.display())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The policy and the suite disagree (conditions, query sets, held-out files).
    #[error("{} does not fit {}: {message}", policy.display(), suite.display())]
    Mismatch {
        /// The policy file.
        policy: PathBuf,
        /// The suite file.
        suite: PathBuf,
        /// What differs.
        message: String,
    },
    /// The suite could not be loaded or rendered.
    #[error(transparent)]
    Suite(#[from] tell_faking::Error),
    /// Training or loading the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Invalid training options.
    #[error("{0}")]
    Options(String),
    /// Writing or checking the checkpoint failed.
    #[error("{}: {message}", path.display())]
    Export {
        /// The checkpoint directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl OrganismError {
    pub(crate) fn io(path: &Path, err: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            err,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = OrganismError> = std::result::Result<T, E>;
