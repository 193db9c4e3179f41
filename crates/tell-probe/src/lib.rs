//! Linear probes on hidden activations, with leakage-safe evaluation.
//!
//! Works on plain in-memory arrays: a row-major `f32` [`Matrix`] (records x features), `bool`
//! labels and `u32` group ids (e.g. one per query, from [`group_ids`]). Families: L2 logistic
//! regression ([`Family::Logreg`]), difference of means ([`Family::Diffmean`]) and shrinkage LDA
//! ([`Family::Lda`]), all on features standardised on the training fold only.
//!
//! Entry points: [`train`] (grouped CV + final probe), [`cross_validate`], [`transfer`],
//! [`sweep`] (many layers x families, parallel), [`ProbeArtifact::save`]/[`ProbeArtifact::load`]
//! and [`Probe::apply`]. [`store_io`] and [`pipeline`] join an activation store (`tell-store`)
//! with a labels CSV and do the work of `tell probe train | compare | apply`.

pub mod artifact;
pub mod cv;
pub mod data;
pub mod diffmean;
pub mod error;
pub mod kernels;
pub mod lbfgs;
pub mod lda;
pub mod logistic;
pub mod means;
pub mod metrics;
pub mod pipeline;
pub mod plot;
pub mod probe;
pub mod rng;
pub mod splits;
pub mod standardize;
pub mod store_io;
pub mod sweep;
pub mod synthetic;
pub mod synthetic_store;
pub mod transfer;

pub use artifact::{training_hash, ProbeArtifact, ProbeMeta, Provenance};
pub use cv::{
    cross_validate, train, Calibration, Control, CvOptions, CvReport, FoldMetrics, ProbeReport,
    Summary,
};
pub use data::{group_ids, labels_from_options, Matrix};
pub use error::{ProbeError, Result};
pub use lda::Shrinkage;
pub use metrics::{auroc, Interval};
pub use pipeline::{
    apply_to_store, compare_rows, format_table, train_from_store, ApplyOutcome, TrainConfig,
    TrainOutcome,
};
pub use plot::write_layer_plots;
pub use probe::{fit, Family, FitOptions, Probe, L2};
pub use splits::{grouped_kfold, ungrouped_kfold, Fold};
pub use standardize::Standardizer;
pub use store_io::ControlSource;
pub use sweep::{
    rank, read_metrics_csv, sweep, write_metrics_csv, SweepInput, SweepResult, SweepRow,
};
pub use transfer::{transfer, Subset, TransferMatrix};
