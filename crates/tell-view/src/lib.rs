//! `tell view`: a run's responses as one static, self-contained HTML page (no network, no build
//! step). Each response shows its condition, tier, class and label (faking / honest / control),
//! its prompt one click away, and, when the run was monitored, every token coloured on a
//! diverging scale around the monitor's threshold (blue below, red above), with a legend.
//! Filters by condition, tier and label run in the page.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What can go wrong reading a run.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A file of the run is missing or unreadable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run's files do not fit together.
    #[error("{0}")]
    Run(String),
    /// Reading a table failed.
    #[error(transparent)]
    Faking(#[from] tell_faking::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ViewError>;

/// Choices of `tell view`.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    /// The monitor probe whose scores colour the tokens (default: the first in monitor.jsonl).
    pub probe: Option<String>,
}

/// The page and what it shows.
#[derive(Debug, Clone)]
pub struct View {
    /// The HTML.
    pub html: String,
    /// Responses on the page.
    pub responses: usize,
    /// Coloured tokens on the page (0 without a monitor).
    pub tokens: usize,
    /// The probe whose scores colour the tokens.
    pub probe: Option<String>,
    /// The threshold the colours are centred on.
    pub threshold: f64,
}

/// One response as the page's script reads it.
#[derive(Serialize)]
struct Item {
    id: String,
    condition: String,
    tier: String,
    class: String,
    label: String,
    prompt: String,
    text: String,
    pieces: Option<Vec<String>>,
    scores: Option<Vec<f64>>,
    mean: Option<f64>,
}

#[derive(Serialize)]
struct Data<'a> {
    run: String,
    probe: Option<&'a str>,
    threshold: f64,
    scale: f64,
    responses: &'a [Item],
}

fn file_err(path: &Path, message: impl ToString) -> ViewError {
    ViewError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Builds the page of the run directory `run`.
pub fn render_run(run: &Path, opts: &ViewOptions) -> Result<View> {
    let prompts = tell_faking::read_prompts(&run.join("prompts.jsonl"))?;
    let responses = tell_faking::read_responses(&run.join("responses.jsonl"))?;
    let scores = tell_faking::read_scores(&run.join("scores.csv"))?;
    let faking = read_faking(&run.join("labels.csv"))?;
    let prompt_of: HashMap<&str, String> = prompts
        .iter()
        .map(|p| {
            let text = p
                .messages
                .iter()
                .map(|m| format!("[{}]\n{}", m.role, m.content))
                .collect::<Vec<_>>()
                .join("\n\n");
            (p.id.as_str(), text)
        })
        .collect();
    let score_of: HashMap<&str, &tell_faking::ScoreRow> =
        scores.iter().map(|s| (s.id.as_str(), s)).collect();
    let (monitor, probe) = read_monitor(&run.join("monitor.jsonl"), opts.probe.as_deref())?;
    let threshold = match &probe {
        Some(p) => read_threshold(&run.join("monitor.csv"), p)?,
        None => 0.0,
    };
    let mut items = Vec::with_capacity(responses.len());
    for r in &responses {
        let s = score_of.get(r.id.as_str()).ok_or_else(|| {
            ViewError::Run(format!(
                "{}: response {:?} has no row in scores.csv",
                run.display(),
                r.id
            ))
        })?;
        let label = if s.kind == "benign" {
            "control".to_string()
        } else {
            match faking
                .get(&(s.query_id.clone(), s.condition.clone()))
                .map(String::as_str)
            {
                Some("yes") => "faking".into(),
                Some("no") => "honest".into(),
                _ => "unknown".into(),
            }
        };
        let m = monitor.get(&r.id);
        items.push(Item {
            id: r.id.clone(),
            condition: s.condition.clone(),
            tier: s.tier.clone(),
            class: s.class.as_str().to_string(),
            label,
            prompt: prompt_of.get(r.id.as_str()).cloned().unwrap_or_default(),
            text: r.response.clone(),
            pieces: m.map(|m| m.0.clone()),
            scores: m.map(|m| m.1.clone()),
            mean: m.map(|m| m.1.iter().sum::<f64>() / m.1.len().max(1) as f64),
        });
    }
    if probe.is_some() && monitor.len() != items.len() {
        return Err(ViewError::Run(format!(
            "{}: monitor.jsonl has {} responses, responses.jsonl {}",
            run.display(),
            monitor.len(),
            items.len()
        )));
    }
    let tokens: usize = items
        .iter()
        .filter_map(|i| i.scores.as_ref())
        .map(Vec::len)
        .sum();
    let scale = scale_of(&items, threshold);
    let data = Data {
        run: run.display().to_string(),
        probe: probe.as_deref(),
        threshold,
        scale,
        responses: &items,
    };
    let json = serde_json::to_string(&data)
        .map_err(|e| ViewError::Run(format!("encoding the page's data: {e}")))?
        // The data sits in a <script> element: no "</" may end it early.
        .replace("</", "<\\/");
    let html = page(&data, &json);
    Ok(View {
        html,
        responses: items.len(),
        tokens,
        probe,
        threshold,
    })
}

/// The colour scale: the 95th percentile of |score - threshold| over every token.
fn scale_of(items: &[Item], threshold: f64) -> f64 {
    let mut d: Vec<f64> = items
        .iter()
        .filter_map(|i| i.scores.as_ref())
        .flatten()
        .map(|s| (s - threshold).abs())
        .filter(|v| v.is_finite())
        .collect();
    if d.is_empty() {
        return 1.0;
    }
    d.sort_by(f64::total_cmp);
    d[(d.len() - 1) * 95 / 100].max(1e-12)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(data: &Data<'_>, json: &str) -> String {
    let mut h = String::new();
    let title = format!("tell view: {}", data.run);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>\n{}</style>\n</head>\n<body data-ready=\"\">\n<header>\n<h1>{}</h1>\n",
        escape(&title),
        include_str!("../assets/view.css"),
        escape(&title)
    );
    match data.probe {
        Some(p) => {
            let _ = write!(
                h,
                "<div class=\"meta\">token colours: probe <code>{}</code>, threshold {:.4} \
                 (1% false positives on the control responses)</div>\n<div class=\"controls\">\
                 <div class=\"legend\"><span>{:.2}</span><div class=\"bar\"><div class=\"mark\" \
                 title=\"threshold\"></div></div><span>{:.2}</span><span>(threshold at the \
                 mark)</span></div>\n",
                escape(p),
                data.threshold,
                data.threshold - data.scale,
                data.threshold + data.scale
            );
        }
        None => {
            h.push_str(
                "<div class=\"meta none\">no monitor in this run (tell run --monitor PROBE): \
                 tokens are not coloured</div>\n<div class=\"controls\">\n",
            );
        }
    }
    for (key, label) in [
        ("condition", "condition"),
        ("tier", "tier"),
        ("label", "label"),
    ] {
        let _ = writeln!(
            h,
            "<label>{label} <select id=\"f-{key}\"><option value=\"\">all</option></select></label>"
        );
    }
    h.push_str("<span id=\"count\"></span>\n</div>\n</header>\n<main id=\"list\"></main>\n");
    let _ = write!(
        h,
        "<script id=\"data\" type=\"application/json\">{json}</script>\n<script>\n{}</script>\n\
         </body>\n</html>\n",
        include_str!("../assets/view.js")
    );
    h
}

/// `(query_id, condition) -> faking` from labels.csv.
fn read_faking(path: &Path) -> Result<HashMap<(String, String), String>> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| file_err(path, e))?;
    let header = rdr.headers().map_err(|e| file_err(path, e))?.clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| file_err(path, format!("no column {name:?}")))
    };
    let (q, c, f) = (col("query_id")?, col("condition")?, col("faking")?);
    let mut out = HashMap::new();
    for row in rdr.records() {
        let row = row.map_err(|e| file_err(path, e))?;
        out.insert((row[q].to_string(), row[c].to_string()), row[f].to_string());
    }
    Ok(out)
}

type Scored = HashMap<String, (Vec<String>, Vec<f64>)>;

/// Per response id: its pieces and one probe's token scores; and that probe's name. No monitor
/// file: nothing.
fn read_monitor(path: &Path, want: Option<&str>) -> Result<(Scored, Option<String>)> {
    if !path.is_file() {
        if let Some(p) = want {
            return Err(file_err(
                path,
                format!("--probe {p}: the run has no monitor (tell run --monitor)"),
            ));
        }
        return Ok((HashMap::new(), None));
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    let mut out = HashMap::new();
    let mut probe: Option<String> = want.map(str::to_string);
    for (i, line) in text.lines().enumerate() {
        let bad = |m: String| file_err(path, format!("line {}: {m}", i + 1));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let probes = v["probes"]
            .as_object()
            .ok_or_else(|| bad("no probes".into()))?;
        let name = match &probe {
            Some(p) => p.clone(),
            None => {
                let first = probes.keys().next().ok_or_else(|| bad("no probe".into()))?;
                probe = Some(first.clone());
                first.clone()
            }
        };
        let p = probes.get(&name).ok_or_else(|| {
            bad(format!(
                "no probe {name:?} (it has: {})",
                probes.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let scores: Vec<f64> =
            serde_json::from_value(p["scores"].clone()).map_err(|e| bad(e.to_string()))?;
        let pieces: Vec<String> =
            serde_json::from_value(v["pieces"].clone()).map_err(|e| bad(e.to_string()))?;
        if pieces.len() != scores.len() {
            return Err(bad(format!(
                "{} pieces for {} scores",
                pieces.len(),
                scores.len()
            )));
        }
        let id = v["id"].as_str().ok_or_else(|| bad("no id".into()))?;
        out.insert(id.to_string(), (pieces, scores));
    }
    Ok((out, probe))
}

/// The probe's threshold from monitor.csv (0, the probe's natural boundary, without one).
fn read_threshold(path: &Path, probe: &str) -> Result<f64> {
    if !path.is_file() {
        return Ok(0.0);
    }
    let mut rdr = csv::Reader::from_path(path).map_err(|e| file_err(path, e))?;
    let header = rdr.headers().map_err(|e| file_err(path, e))?.clone();
    let (Some(p), Some(t)) = (
        header.iter().position(|h| h == "probe"),
        header.iter().position(|h| h == "threshold"),
    ) else {
        return Err(file_err(path, "no probe and threshold columns"));
    };
    for row in rdr.records() {
        let row = row.map_err(|e| file_err(path, e))?;
        if &row[p] == probe {
            return Ok(row[t].parse().unwrap_or(0.0));
        }
    }
    Ok(0.0)
}
