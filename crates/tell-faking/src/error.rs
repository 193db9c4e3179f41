//! The one error type of the crate: every message names the file (and line, column or
//! placeholder) at fault, so a user can fix the input without reading code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading suites, queries, prompts, responses or scores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The suite TOML does not parse or has a wrong shape.
    #[error("{path}: invalid suite: {message}")]
    Suite {
        /// The suite file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A template file named by the suite does not exist.
    #[error("{suite}: condition `{condition}` names template {template}, which does not exist")]
    MissingTemplate {
        /// The suite file.
        suite: PathBuf,
        /// The condition (or `user` for the user-turn template).
        condition: String,
        /// The missing template path.
        template: PathBuf,
    },
    /// A template uses a placeholder that the suite does not define.
    #[error("{template}: unknown placeholder {{{{{placeholder}}}}} (known: {known})")]
    UnknownPlaceholder {
        /// The template file.
        template: PathBuf,
        /// The placeholder name.
        placeholder: String,
        /// The names that would have been accepted, comma-separated.
        known: String,
    },
    /// A template has a `{{` without a closing `}}`.
    #[error("{template}: unclosed placeholder starting at byte {offset}")]
    UnclosedPlaceholder {
        /// The template file.
        template: PathBuf,
        /// Byte offset of the `{{`.
        offset: usize,
    },
    /// A query file lacks the text column the suite names.
    #[error("{path}: no column `{column}` (columns: {available})")]
    MissingColumn {
        /// The query file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The columns found, comma-separated.
        available: String,
    },
    /// A data file (CSV, JSONL, YAML) is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Responses name prompt ids that the prompts file does not have.
    #[error("{responses}: {count} response id(s) not in {prompts}, first: {first}")]
    UnknownResponseIds {
        /// The responses file.
        responses: PathBuf,
        /// The prompts file.
        prompts: PathBuf,
        /// How many ids are unknown.
        count: usize,
        /// The first unknown id.
        first: String,
    },
    /// Two rows share the id that prompts, responses and scores are joined and counted on.
    #[error(
        "{path}: {unit}s {first} and {second} have the same id `{id}`; ids must be unique, as \
         prompts, responses and scores are joined on them and a repeated id would be counted twice"
    )]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// What `first` and `second` count: `line`, or `prompt` / `response` for a list read
        /// from the file.
        unit: &'static str,
        /// The id.
        id: String,
        /// 1-based line (or position) where the id first appears.
        first: usize,
        /// 1-based line (or position) where it appears again.
        second: usize,
    },
    /// An argument value is out of range (counts, thresholds).
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The first id of `ids` (1-based line or position, id) that appears twice, as an error.
    pub(crate) fn check_unique<'a>(
        path: &Path,
        unit: &'static str,
        ids: impl IntoIterator<Item = (usize, &'a str)>,
    ) -> Result<()> {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (at, id) in ids {
            if let Some(&f) = first.get(id) {
                return Err(Error::DuplicateId {
                    path: path.to_owned(),
                    unit,
                    id: id.to_owned(),
                    first: f,
                    second: at,
                });
            }
            first.insert(id, at);
        }
        Ok(())
    }

    /// A parse error at `path:line`.
    pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, message: impl ToString) -> Self {
        Error::Parse {
            path: path.into(),
            line,
            message: message.to_string(),
        }
    }
}
