//! `tell-capture`: the capture stage of `tell`, prompts through a LLaMA-family model into an
//! activation store (`tell-store`).
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::atomic::AtomicBool;
//! use tell_capture::{capture, CaptureOptions};
//! let report = capture(
//!     Path::new("model.gguf"),
//!     Path::new("prompts.jsonl"),
//!     Path::new("run/acts"),
//!     &CaptureOptions::default(),
//!     &AtomicBool::new(false),
//! )?;
//! println!("{} records, {:.0} tokens/s", report.records, report.tokens_per_second());
//! # Ok::<(), tell_capture::CaptureError>(())
//! ```
//!
//! Prompt lines, the context-length policy, site names and batching are described in the
//! modules [`prompts`], [`encode`], [`sites`] and [`capture`](mod@capture).

pub mod capture;
pub mod encode;
mod error;
pub mod monitor;
pub mod onepass;
pub mod patch;
pub mod prompts;
pub mod respond;
mod select;
pub mod sites;

pub use capture::{
    capture, capture_on, interrupt_flag, model_identity, CaptureOptions, CaptureReport, Outcome,
};
pub use encode::{render_prompt, Encoded, Encoder, Truncate};
pub use error::{CaptureError, Result};
pub use monitor::{Aggregates, Monitor, MonitorProbe};
pub use onepass::OnePassStore;
pub use patch::{is_store, patch_sources, PatchSource};
pub use prompts::{
    check_file, parse_line, ChatMessage, IdLines, PromptInput, PromptLine, PromptReader,
    PromptsSummary, ResponseInput,
};
pub use respond::{
    prompt_tokens, respond_and_capture, respond_file, respond_tokens, RespondOptions,
    RespondReport, Response,
};
pub use sites::{parse_layers, select, Selection};
