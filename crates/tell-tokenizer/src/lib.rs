//! Tokenizers and chat templates for LLaMA-family models, matching transformers:
//! HF `tokenizer.json` directories and the byte-level BPE tokenizer embedded in a GGUF, encoded
//! with the `tokenizers` crate (pure Rust), chat templates rendered with minijinja the way
//! `apply_chat_template` renders them. No burn dependency.
//!
//! ```no_run
//! use tell_tokenizer::{Message, Tokenizer};
//! let tok = Tokenizer::load("checkpoints/fetched/llama3-tokenizer")?;
//! let ids = tok.encode_chat(&[Message::user("Hi")], true)?;
//! let stop = tok.stop_token_ids();
//! # Ok::<(), tell_tokenizer::TokenizerError>(())
//! ```

mod chat;
mod error;
mod gguf;
mod hf;
mod jinja_fns;
mod tokenizer;

pub use chat::{ChatTemplate, Message};
pub use error::{Result, TokenizerError};
pub use tokenizer::{Tokenizer, END_OF_TURN_TOKENS};
