//! Typed errors: every variant that touches a file names it.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while writing, reading, verifying or exporting a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shards that cannot be merged into one store; the message names the shard.
    #[error("merge: {0}")]
    Merge(String),
    /// An operating-system error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `manifest.json` is missing, unparsable or inconsistent.
    #[error("{path}: invalid manifest: {message}")]
    Manifest {
        /// Path of the manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A shard file is unreadable or does not hold what the manifest says.
    #[error("{path}: invalid shard: {message}")]
    Shard {
        /// Path of the shard.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `records.csv` is unreadable or inconsistent.
    #[error("{path}: invalid records table: {message}")]
    Records {
        /// Path of the records table.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The directory already holds a store of a different model.
    #[error(
        "{path}: holds a store of another model ({found}), requested {requested}; \
         refusing to touch it unless forced (--force)"
    )]
    OtherModel {
        /// The store directory.
        path: PathBuf,
        /// Model identity recorded in the store.
        found: String,
        /// Model identity of the caller.
        requested: String,
    },
    /// Resuming a store whose layout differs from the requested one.
    #[error("{path}: cannot resume: the store has {field} = {found}, requested {requested}")]
    SpecMismatch {
        /// The store directory.
        path: PathBuf,
        /// Which setting differs (sites, layers, positions, dtype, ...).
        field: &'static str,
        /// Value in the store.
        found: String,
        /// Requested value.
        requested: String,
    },
    /// Creating a store where one already exists.
    #[error("{path}: already holds an activation store; resume it or force an overwrite")]
    StoreExists {
        /// The store directory.
        path: PathBuf,
    },
    /// The store specification itself is invalid (no sites, d = 0, duplicate layer, ...).
    #[error("invalid store spec: {0}")]
    Spec(String),
    /// A record handed to the writer does not fit the spec.
    #[error("record {index} (id {id:?}): {message}")]
    Record {
        /// Global record index the record would have had.
        index: usize,
        /// The record's id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// Pooling input is inconsistent (lengths, empty prompt or response).
    #[error("pooling: {0}")]
    Pool(String),
    /// A tensor name that the store does not hold.
    #[error("{path}: no tensor {name:?} in this store (it holds: {available})")]
    UnknownTensor {
        /// The store directory.
        path: PathBuf,
        /// Requested name.
        name: String,
        /// Names the store holds.
        available: String,
    },
    /// A record index past the end of the store.
    #[error("{path}: record {index} out of range (the store holds {count} records)")]
    RecordOutOfRange {
        /// The store directory.
        path: PathBuf,
        /// Requested index.
        index: usize,
        /// Number of records.
        count: usize,
    },
    /// Exporting a store that holds no records.
    #[error("{path}: the store holds no records; nothing to export")]
    EmptyStore {
        /// The store directory.
        path: PathBuf,
    },
}

/// Builds a closure that wraps an `io::Error` with the path it happened on.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
