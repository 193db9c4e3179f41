//! `tell-store`: the on-disk activation store.
//!
//! A store is a directory (conventionally `RUN/acts`) holding
//! - `manifest.json`: format version, model identity, sites, layers, positions, dtype, widths,
//!   committed shards (record ranges, sizes, sha256), record and token counts, tool version,
//!   creation args ([`Manifest`]);
//! - `shard-00000.safetensors`, ...: per shard one tensor per site/layer named like
//!   `blocks.12.hook_resid_post`, shape `[records_in_shard, d]` for pooled positions or
//!   `[tokens_in_shard, d]` for `all` plus an int64 `offsets` tensor `[records_in_shard + 1]`;
//! - `records.csv`: one row per committed record (`record, id, query_id, condition, tier,
//!   n_tokens, n_response_tokens`, then every extra prompt-line field).
//!
//! Writing ([`StoreWriter`]) is crash-safe and resumable and holds at most one shard in memory;
//! reading ([`Store`]) memory-maps one shard at a time. No dependency on burn: plain `f32` slices.

mod error;
mod export;
mod fsio;
mod manifest;
mod merge;
mod npy;
pub mod pool;
mod reader;
mod records;
mod spec;
mod verify;
mod writer;

pub use error::{Error, Result};
pub use export::{export_npy, ExportReport};
pub use manifest::{
    shard_file_name, Manifest, ShardEntry, TensorEntry, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE,
    OFFSETS_TENSOR, RECORDS_FILE,
};
pub use merge::{merge, MergeReport, PROMPT_INDEX};
pub use npy::{npy_header, NpyWriter};
pub use pool::{pool, pool_into, MeanRows};
pub use reader::{Chunk, Matrix, ShardReader, Store, StoreInfo};
pub use records::{read_records, RecordMeta, RecordRow, FIXED_COLUMNS};
pub use spec::{
    model_hash, ModelIdentity, Positions, SiteLayerKey, SiteSpec, Split, StoreDtype, StoreSpec,
    DEFAULT_MAX_SHARD_BYTES, DEFAULT_SHARD_RECORDS,
};
pub use verify::{verify, Problem, VerifyReport};
pub use writer::{ResumeReport, StoreWriter};
