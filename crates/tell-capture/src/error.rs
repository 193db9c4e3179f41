//! Typed errors of the capture stage; every input error names the file and line or the flag.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;

/// Everything that can go wrong while capturing.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The prompts file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A prompt line is empty, malformed or inconsistent.
    #[error("{path}:{line}: {message}")]
    Prompt {
        /// The prompts file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Two prompt lines share an id (records, responses and labels are joined on it).
    #[error(
        "{path}:{line}: id {id:?} is already the id of line {first}; every prompt needs its own \
         id, since records, responses and labels are joined on it"
    )]
    DuplicateId {
        /// The prompts file.
        path: PathBuf,
        /// The id.
        id: String,
        /// 1-based line where the id first appears.
        first: usize,
        /// 1-based line where it appears again.
        line: usize,
    },
    /// A prompt (plus response) does not fit the model's context and no truncation was asked.
    #[error(
        "{path}:{line}: prompt{} has {tokens} tokens, more than the model's context of {context} \
         (max_position_embeddings); shorten it or pass --truncate left|right",
        if *.with_response { " + response" } else { "" }
    )]
    TooLong {
        /// The prompts file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Tokens of the sequence.
        tokens: usize,
        /// The model's context length.
        context: usize,
        /// Whether the count includes a response.
        with_response: bool,
    },
    /// The prompts file holds no prompt.
    #[error("{path}: no prompts")]
    NoPrompts {
        /// The prompts file.
        path: PathBuf,
    },
    /// `--sites`, `--layers`, `--positions`, `--truncate` or another option is invalid.
    #[error("{0}")]
    Options(String),
    /// The prompts file does not match the records already in the store being resumed.
    #[error(
        "{path}: cannot resume: record {record} of the store has id {stored:?}, but line {line} \
         of the prompts file has id {found:?} (a different prompts file?)"
    )]
    ResumeMismatch {
        /// The store directory.
        path: PathBuf,
        /// Record index.
        record: usize,
        /// 1-based line of the prompts file.
        line: usize,
        /// Id in the store.
        stored: String,
        /// Id in the prompts file.
        found: String,
    },
    /// The model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] tell_llama::Error),
    /// The store could not be written or read.
    #[error(transparent)]
    Store(#[from] tell_store::Error),
    /// The model's tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] tell_tokenizer::TokenizerError),
    /// A tensor could not be read back from the backend.
    #[error("reading captured values back: {0}")]
    Tensor(String),
}
