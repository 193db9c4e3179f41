//! Typed errors: every bad input names its cause so the CLI can print it as is.

use thiserror::Error;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ProbeError>;

/// Everything that can go wrong when fitting, evaluating, saving or loading a probe.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The flat data buffer does not have `n_rows * n_cols` values.
    #[error("matrix shape mismatch: {n_rows} rows x {n_cols} features needs {expected} values, got {got}")]
    Shape {
        n_rows: usize,
        n_cols: usize,
        expected: usize,
        got: usize,
    },
    /// A matrix with no rows or no features.
    #[error("empty matrix: {n_rows} rows x {n_cols} features")]
    Empty { n_rows: usize, n_cols: usize },
    /// NaN or infinity among the features.
    #[error("non-finite feature value ({value}) at row {row}, feature {col}")]
    NonFinite { row: usize, col: usize, value: f32 },
    /// Labels and rows disagree in count.
    #[error("labels cover {labels} rows but the matrix has {rows} rows")]
    LabelCount { labels: usize, rows: usize },
    /// Some rows have no label (e.g. a label file that misses records of the store).
    #[error("{count} rows have no label (first missing: row {first_row})")]
    MissingLabels { count: usize, first_row: usize },
    /// Group ids and rows disagree in count.
    #[error("group ids cover {groups} rows but the matrix has {rows} rows")]
    GroupCount { groups: usize, rows: usize },
    /// All labels are the same class, so nothing can be separated.
    #[error("labels have one class only: {n_pos} positive, {n_neg} negative ({context})")]
    OneClass {
        n_pos: usize,
        n_neg: usize,
        context: String,
    },
    /// Grouped k-fold needs at least k distinct groups.
    #[error("fewer groups than folds: {groups} distinct groups for {folds} folds")]
    TooFewGroups { groups: usize, folds: usize },
    /// An option is out of its valid range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption { name: &'static str, reason: String },
    /// A probe was applied to rows of another width.
    #[error("feature count mismatch: probe has {probe} features, data has {data}")]
    FeatureMismatch { probe: usize, data: usize },
    /// A subset (condition) named in a transfer matrix selects no rows or one class.
    #[error("subset {name:?}: {reason}")]
    Subset { name: String, reason: String },
    /// The optimiser did not produce finite values (should not happen on finite input).
    #[error("solver failed: {0}")]
    Solver(String),
    /// Filesystem error, with the path.
    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// probe.json could not be parsed or written.
    #[error("probe metadata {path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    /// probe.safetensors is malformed or misses a tensor.
    #[error("probe tensors {path}: {reason}")]
    Tensors { path: String, reason: String },
    /// A plot could not be drawn or written.
    #[error("plot: {0}")]
    Plot(#[from] tell_plot::PlotError),
    /// The activation store could not be read.
    #[error("activation store: {0}")]
    Store(#[from] tell_store::Error),
    /// A labels CSV is unreadable or does not have the named columns or values.
    #[error("labels {path}: {reason}")]
    Labels { path: String, reason: String },
    /// A label file that misses records of the store.
    #[error(
        "label file {path} has no label for {count} of {total} records of the store \
         (first: record {first_index}, id {first_id:?}, joined on {join_on}); label them, or \
         leave control records out with --control-where COLUMN=VALUE"
    )]
    UnlabelledRecords {
        path: String,
        count: usize,
        total: usize,
        first_index: usize,
        first_id: String,
        join_on: String,
    },
    /// A store that does not fit what is asked of it (a probe's site/layer/position/width, a
    /// control store's tensors, pooled positions, a metadata column).
    #[error("store {store}: {reason}")]
    StoreMismatch { store: String, reason: String },
}

impl ProbeError {
    /// Wraps an io error with the path it concerns.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        ProbeError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
