//! Typed errors of tell-tokenizer: every bad input (missing or malformed files, an unsupported
//! GGUF vocabulary, a template that fails) ends here instead of in a panic.

use std::path::PathBuf;

/// Result with [`TokenizerError`].
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;

/// What went wrong while loading a tokenizer, encoding, decoding or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The path holds no tokenizer this crate can load.
    #[error("no tokenizer at {path}: {reason}")]
    NotFound {
        /// The file or directory given.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// `tokenizer.json` is not a tokenizer the `tokenizers` crate accepts.
    #[error("invalid tokenizer file {path}: {reason}")]
    InvalidTokenizer {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A JSON side file (`tokenizer_config.json`, `generation_config.json`) is malformed.
    #[error("invalid {path}: {reason}")]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the GGUF file or its tokenizer keys failed.
    #[error("GGUF: {0}")]
    Gguf(#[from] tell_gguf::GgufError),
    /// The GGUF describes a tokenizer kind this crate does not build (only `gpt2` byte-level BPE).
    #[error(
        "unsupported GGUF tokenizer model '{model}': only 'gpt2' (byte-level BPE) is supported"
    )]
    UnsupportedGguf {
        /// `tokenizer.ggml.model`.
        model: String,
    },
    /// The GGUF tokenizer keys are inconsistent (bad merges, ids out of range, ...).
    #[error("invalid GGUF tokenizer: {reason}")]
    InvalidGguf {
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer failed on some input.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// Decoding ids failed.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// A token id is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary ({vocab_size} tokens)")]
    UnknownId {
        /// The id.
        id: u32,
        /// Vocabulary size including added tokens.
        vocab_size: usize,
    },
    /// Chat rendering was asked of a tokenizer without a chat template.
    #[error("no chat template: {source_desc} has none (tokenizer_config.json `chat_template`, chat_template.jinja or GGUF `tokenizer.chat_template`)")]
    NoChatTemplate {
        /// Where the tokenizer came from.
        source_desc: String,
    },
    /// The chat template does not parse.
    #[error("chat template does not compile: {0}")]
    TemplateSyntax(String),
    /// The chat template failed while rendering (including its own `raise_exception`).
    #[error("chat template failed to render: {0}")]
    TemplateRender(String),
}

/// Flatten a minijinja error with its chain of causes into one line.
pub(crate) fn jinja_message(err: &minijinja::Error) -> String {
    use std::error::Error as _;
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        cur = e.source();
    }
    msg
}
