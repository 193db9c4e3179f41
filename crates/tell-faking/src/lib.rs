//! The alignment-faking experiment: suites of conditions x tiers x queries, prompt rendering,
//! response scoring, statistics per condition and shallow/deep labels per query.
//!
//! Data flow: `suite.toml` -> [`render_suite`] -> prompts.jsonl -> (generation, elsewhere) ->
//! responses.jsonl -> [`score_file`] -> scores.csv -> [`behavior_table`] / [`label_queries`].

pub mod error;
pub mod queries;
pub mod render;
pub mod stats;
pub mod suite;
pub mod template;

pub use error::{Error, Result};
pub use queries::{load_queries, Query, QueryFormat, QuerySpec};
pub use render::{
    read_prompts, render, render_suite, render_suite_with, write_prompts, Message, PromptLine,
    RenderOptions,
};
pub use suite::{Condition, Generation, Suite, SuiteSpec, Tier, TierScheme};
