//! From responses.jsonl and prompts.jsonl to scores.csv: one row per response with its cell
//! (query, condition, tier), its class and the evidence columns.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::evidence::scan;
use crate::render::{read_jsonl_unique, read_prompts, PromptLine};
use crate::score::{judge, Class, Decision};

/// One line of responses.jsonl, as the generation stage writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseLine {
    /// The prompt line's id.
    pub id: String,
    /// The generated text (also read from a `text` or `output` field).
    #[serde(alias = "text", alias = "output")]
    pub response: String,
    /// Generation stopped at max_new_tokens.
    #[serde(default)]
    pub truncated: bool,
    /// Why generation stopped (`stop`, `length`, ...); `length` counts as truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// One row of scores.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// The prompt/response id.
    pub id: String,
    /// The query's id.
    pub query_id: String,
    /// The condition.
    pub condition: String,
    /// The tier's name.
    pub tier: String,
    /// Whether the tier is the monitored one.
    pub monitored: bool,
    /// The baseline a mitigation condition is compared with (empty for baselines).
    #[serde(default)]
    pub baseline: String,
    /// The query set's kind (`harmful`, `benign`; empty when the suite gives none).
    #[serde(default)]
    pub kind: String,
    /// Sample index within the cell.
    #[serde(default)]
    pub sample: usize,
    /// complied / refused / unclear.
    pub class: Class,
    /// Which decision tag(s) were found outside the scratchpad.
    pub decision: Decision,
    /// Why the class was given.
    pub reason: String,
    /// The response was cut.
    pub truncated: bool,
    /// The answer holds a refusal phrase.
    pub refusal_phrase: bool,
    /// The answer holds a compliance marker.
    pub compliance_marker: bool,
    /// The response has a scratchpad.
    pub has_scratchpad: bool,
    /// The scratchpad mentions training.
    pub ev_training: bool,
    /// The scratchpad mentions monitoring.
    pub ev_monitoring: bool,
    /// The scratchpad mentions modification of the model.
    pub ev_modification: bool,
    /// The scratchpad mentions the tier.
    pub ev_tier: bool,
}

/// Scores one response against its prompt line.
pub fn score_one(prompt: &PromptLine, response: &ResponseLine) -> ScoreRow {
    let cut = response.truncated || response.finish_reason.as_deref() == Some("length");
    let (parsed, verdict) = judge(&response.response, cut);
    let ev = parsed
        .scratchpad
        .as_deref()
        .map(|s| scan(s, &[prompt.tier.as_str()]))
        .unwrap_or_default();
    ScoreRow {
        id: prompt.id.clone(),
        query_id: prompt.query_id.clone(),
        condition: prompt.condition.clone(),
        tier: prompt.tier.clone(),
        monitored: prompt.monitored,
        baseline: prompt.baseline.clone().unwrap_or_default(),
        kind: prompt.query_kind.clone().unwrap_or_default(),
        sample: prompt.sample,
        class: verdict.class,
        decision: parsed.decision,
        reason: verdict.reason.to_owned(),
        truncated: verdict.truncated,
        refusal_phrase: verdict.refusal_phrase,
        compliance_marker: verdict.compliance_marker,
        has_scratchpad: parsed.scratchpad.is_some(),
        ev_training: ev.training,
        ev_monitoring: ev.monitoring,
        ev_modification: ev.modification,
        ev_tier: ev.tier,
    }
}

/// Reads responses.jsonl; a bad line, or an id on two lines, is an error naming the lines.
pub fn read_responses(path: &Path) -> Result<Vec<ResponseLine>> {
    read_jsonl_unique(path, |r: &ResponseLine| &r.id)
}

/// Scores every response of `responses` against `prompts`, in the responses' order.
///
/// Every response id must be a prompt id: a stray id means the two files do not belong together,
/// and scoring half a run silently would bias the statistics. An id given to two prompts or two
/// responses is refused too (naming their 1-based positions in the lists): the join would score
/// one response against the wrong prompt, or one prompt twice.
pub fn score_all(
    prompts: &[PromptLine],
    responses: &[ResponseLine],
    responses_path: &Path,
    prompts_path: &Path,
) -> Result<Vec<ScoreRow>> {
    Error::check_unique(
        prompts_path,
        "prompt",
        prompts
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.id.as_str())),
    )?;
    Error::check_unique(
        responses_path,
        "response",
        responses
            .iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r.id.as_str())),
    )?;
    let by_id: HashMap<&str, &PromptLine> = prompts.iter().map(|p| (p.id.as_str(), p)).collect();
    let unknown: Vec<&str> = responses
        .iter()
        .filter(|r| !by_id.contains_key(r.id.as_str()))
        .map(|r| r.id.as_str())
        .collect();
    if let Some(first) = unknown.first() {
        return Err(Error::UnknownResponseIds {
            responses: responses_path.to_owned(),
            prompts: prompts_path.to_owned(),
            count: unknown.len(),
            first: (*first).to_owned(),
        });
    }
    Ok(responses
        .iter()
        .filter_map(|r| by_id.get(r.id.as_str()).map(|p| score_one(p, r)))
        .collect())
}

/// Reads both files and scores: the library side of `tell score`.
pub fn score_file(responses: &Path, prompts: &Path) -> Result<Vec<ScoreRow>> {
    let p = read_prompts(prompts)?;
    let r = read_responses(responses)?;
    score_all(&p, &r, responses, prompts)
}

/// Writes rows of any serialisable type as CSV with a header row.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(|e| csv_err(path, e))?;
    for row in rows {
        w.serialize(row).map_err(|e| csv_err(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

/// Reads scores.csv back; an id on two rows is an error naming both lines, since the statistics
/// and labels would count that response twice.
pub fn read_scores(path: &Path) -> Result<Vec<ScoreRow>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| csv_err(path, e))?;
    let mut out: Vec<ScoreRow> = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        out.push(row.map_err(|e: csv::Error| Error::parse(path, i + 2, e))?);
    }
    Error::check_unique(
        path,
        "line",
        out.iter().enumerate().map(|(i, s)| (i + 2, s.id.as_str())),
    )?;
    Ok(out)
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::parse(path, 0, format!("{other:?}")),
    }
}
