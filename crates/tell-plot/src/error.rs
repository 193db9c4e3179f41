//! Errors of the plotting functions.

use thiserror::Error;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, PlotError>;

/// What can go wrong when drawing or writing a plot.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The input cannot be drawn (no data, mismatched lengths, bad range).
    #[error("plot {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// The drawing library failed.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// Filesystem error, with the path.
    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl PlotError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        PlotError::Invalid {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        PlotError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
