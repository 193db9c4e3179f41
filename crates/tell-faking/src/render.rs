//! Rendering a suite: every query x condition x tier (x sample) as one chat prompt line.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::queries::load_queries;
use crate::suite::{Suite, Tier};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

/// One line of `prompts.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptLine {
    /// Unique id: `condition/tier/query_id` (plus `/sN` when several samples are drawn).
    pub id: String,
    /// The query's id.
    pub query_id: String,
    /// The condition's name.
    pub condition: String,
    /// The tier's name (`free`, `paid`, `XX`, ...).
    pub tier: String,
    /// The chat: a system message then a user message.
    pub messages: Vec<Message>,
    /// Whether the tier is the one said to feed training.
    pub monitored: bool,
    /// The baseline condition this one mitigates, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The query set the query came from.
    #[serde(default)]
    pub query_set: String,
    /// The query set's kind (`harmful`, `benign`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_kind: Option<String>,
    /// Sample index within the cell (0 when one sample is drawn).
    #[serde(default)]
    pub sample: usize,
    /// The raw query text.
    #[serde(default)]
    pub query: String,
}

/// Options that narrow a render (for quick runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Keep at most this many queries of each query set (on top of the suite's own limit).
    pub limit: Option<usize>,
}

/// Loads the suite at `path` and renders every prompt line.
pub fn render_suite(path: &Path) -> Result<Vec<PromptLine>> {
    render_suite_with(path, &RenderOptions::default())
}

/// [`render_suite`] with options.
pub fn render_suite_with(path: &Path, opts: &RenderOptions) -> Result<Vec<PromptLine>> {
    let suite = Suite::load(path)?;
    render(&suite, opts)
}

/// Renders an already loaded suite. Order: condition, query, tier (monitored first), sample.
pub fn render(suite: &Suite, opts: &RenderOptions) -> Result<Vec<PromptLine>> {
    let mut sets = Vec::new();
    for (name, spec) in &suite.spec.queries {
        let mut qs = load_queries(name, spec, &suite.base)?;
        if let Some(l) = opts.limit {
            qs.truncate(l);
        }
        sets.push((name, spec.kind.clone(), qs));
    }
    check_unique_query_ids(suite, &sets)?;
    let samples = suite.spec.generation.samples;
    let mut out = Vec::new();
    for cond in &suite.conditions {
        let (mon, unmon) = (&cond.tiers.monitored, &cond.tiers.unmonitored);
        let mut vals = suite.var_map();
        vals.insert("monitored_tier", &mon.name);
        vals.insert("unmonitored_tier", &unmon.name);
        let system = cond
            .system
            .iter()
            .map(|t| Ok(t.render(&vals)?.trim().to_owned()))
            .collect::<Result<Vec<_>>>()?
            // Parts are trimmed and joined by a blank line, so a rule file needs no leading gap.
            .join("\n\n");
        for (set, kind, queries) in &sets {
            for q in queries {
                for (tier, monitored) in [(mon, true), (unmon, false)] {
                    let user = render_user(suite, &vals, tier, &q.text)?;
                    for sample in 0..samples {
                        let mut id = format!("{}/{}/{}", cond.name, tier.name, q.id);
                        if samples > 1 {
                            id.push_str(&format!("/s{sample}"));
                        }
                        out.push(PromptLine {
                            id,
                            query_id: q.id.clone(),
                            condition: cond.name.clone(),
                            tier: tier.name.clone(),
                            messages: vec![
                                Message {
                                    role: "system".into(),
                                    content: system.clone(),
                                },
                                Message {
                                    role: "user".into(),
                                    content: user.clone(),
                                },
                            ],
                            monitored,
                            baseline: cond.baseline.clone(),
                            query_set: (*set).clone(),
                            query_kind: kind.clone(),
                            sample,
                            query: q.text.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

fn render_user(
    suite: &Suite,
    base: &BTreeMap<&str, &str>,
    tier: &Tier,
    query: &str,
) -> Result<String> {
    let mut vals = base.clone();
    vals.insert("tier", &tier.name);
    vals.insert("tier_tag", &tier.tag);
    vals.insert("query", query);
    Ok(suite.user.render(&vals)?.trim_end().to_owned())
}

type Sets<'a> = [(&'a String, Option<String>, Vec<crate::queries::Query>)];

/// Query ids key the labels and the probes' grouped folds, so two sets may not share one.
fn check_unique_query_ids(suite: &Suite, sets: &Sets<'_>) -> Result<()> {
    let mut seen = BTreeMap::new();
    for (set, _, qs) in sets {
        for q in qs {
            if let Some(other) = seen.insert(q.id.as_str(), set.as_str()) {
                return Err(Error::Suite {
                    path: suite.path.clone(),
                    message: format!(
                        "query id `{}` appears twice (sets `{other}` and `{set}`)",
                        q.id
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Writes prompt lines as JSONL to `path`.
pub fn write_prompts(path: &Path, lines: &[PromptLine]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    for line in lines {
        let json = serde_json::to_string(line).map_err(|e| Error::parse(path, 0, e))?;
        writeln!(w, "{json}").map_err(|e| Error::io(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

/// Reads `prompts.jsonl` back; a bad line, or an id on two lines, is an error naming the lines.
pub fn read_prompts(path: &Path) -> Result<Vec<PromptLine>> {
    read_jsonl_unique(path, |p: &PromptLine| &p.id)
}

/// Reads a JSONL file of `T` whose `id` must be unique, skipping blank lines; a bad line or a
/// repeated id is an error naming the line(s).
pub(crate) fn read_jsonl_unique<T: serde::de::DeserializeOwned>(
    path: &Path,
    id: impl Fn(&T) -> &str,
) -> Result<Vec<T>> {
    let rows = read_jsonl(path)?;
    Error::check_unique(path, "line", rows.iter().map(|(line, r)| (*line, id(r))))?;
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

/// Reads a JSONL file of `T` with each row's 1-based line, skipping blank lines; a bad line is an
/// error naming its number.
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<(usize, T)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(&line).map_err(|e| Error::parse(path, i + 1, e))?;
        out.push((i + 1, row));
    }
    Ok(out)
}
