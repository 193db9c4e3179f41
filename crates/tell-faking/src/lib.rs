//! The alignment-faking experiment: suites of conditions x tiers x queries, prompt rendering,
//! response scoring, statistics per condition and shallow/deep labels per query.
//!
//! Data flow: `suite.toml` -> [`render_suite`] -> prompts.jsonl -> (generation, elsewhere) ->
//! responses.jsonl -> [`score_file`] -> scores.csv -> [`behavior_table`] / [`label_queries`].

pub mod behavior;
pub mod error;
pub mod evidence;
pub mod labels;
pub mod queries;
pub mod render;
pub mod score;
pub mod scores;
pub mod stats;
pub mod suite;
pub mod template;

pub use behavior::{behavior_table, BehaviorRow};
pub use error::{Error, Result};
pub use labels::{label_queries, LabelRow, DEFAULT_THRESHOLD};
pub use queries::{load_queries, Query, QueryFormat, QuerySpec};
pub use render::{
    read_prompts, render, render_suite, render_suite_with, write_prompts, Message, PromptLine,
    RenderOptions,
};
pub use score::{classify, judge, parse, Class, Decision, Parsed, Verdict};
pub use scores::{
    read_responses, read_scores, score_all, score_file, score_one, write_csv, ResponseLine,
    ScoreRow,
};
pub use suite::{CaptureSpec, Condition, Generation, Suite, SuiteSpec, Tier, TierScheme};
