//! A LLaMA-family decoder on burn, loaded from Hugging Face checkpoints, with named capture sites.
//!
//! The model is generic over the burn backend; [`CpuBackend`] is the one used by default.

pub mod batch;
pub mod block;
pub mod checkpoint;
pub mod config;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
pub mod embed;
pub mod error;
pub mod gemm;
pub mod generate;
pub mod gguf;
pub mod inspect;
pub mod intervene;
pub mod linear;
pub mod model;
pub mod rope;
pub mod site;
pub mod weights;

pub use batch::Batch;
/// The burn version the model is built on, for callers that handle its tensors.
pub use burn;
pub use checkpoint::{Checkpoint, Format};
pub use config::{LlamaConfig, RopeScaling};
pub use device::{run_on, DeviceSpec, OnDevice, Precision};
pub use error::{Error, Result};
pub use generate::{
    generate, generate_observed, generate_queued, Finish, GenerateOptions, Generated, Observe, Seen,
};
pub use inspect::ModelInfo;
pub use intervene::{Edit, Edits, Intervention, Op, PatchValues, RowEdit, Span};
pub use model::{Captures, KvCache, Llama, Logits, Output};
pub use site::{Hook, Site};
pub use weights::{TensorSource, Weights};

/// The CPU backend `tell` runs on by default: burn's `flex`, chosen by measurement (README).
pub type CpuBackend = burn_flex::Flex;

/// burn's `flex` CPU backend (the default).
pub type FlexBackend = burn_flex::Flex;

/// burn's `ndarray` CPU backend, kept for comparison in the benchmarks.
pub type NdArrayBackend = burn_ndarray::NdArray<f32>;
