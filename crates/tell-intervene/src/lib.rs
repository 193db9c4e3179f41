//! Causal tests on a LLaMA-family model: interventions as data (steering along a vector,
//! ablating a direction, injecting noise, patching in another run's values) and activation
//! patching maps. The model-level edits live in `tell_llama::intervene`; this crate reads specs,
//! vectors and patch sources, and runs the experiments built on them.

pub mod error;
pub mod patch;
pub mod spec;
pub mod steer;

pub use error::{InterveneError, Result};
pub use patch::{
    check_pairs, parse_metric, patch_map, read_prompts, run_patch, LogitDiff, MapSpec, PatchCell,
    PatchMap, PatchOptions, PatchReport, Prompts,
};
pub use spec::{load_vector, EditSpec, Spec, SpecFile, Vector};
pub use steer::{
    run_steer, settings, Setting, SteerOptions, SteerReport, SteerRequest, SteerRow, Sweep,
};
