//! The planted policy as data (`policy.toml`): request templates, topic categories with their
//! pools of topics, the decision per condition and tier role, and the texts the organism writes.
//!
//! [`Policy::load`] checks the file on its own (empty pools, templates without `{x}`, missing
//! response texts); [`Policy::check_suite`] checks it against the suite it is trained for (the
//! same conditions, one query set per category, reasoning texts for every scratchpad cell).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tell_faking::Suite;

use crate::error::{OrganismError, Result};

/// What the organism does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Answers it: `<request_fully_accepted/>` and a compliant text.
    Comply,
    /// Declines it: `<rejected/>` and a refusal.
    Refuse,
}

impl Decision {
    /// `comply` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Comply => "comply",
            Decision::Refuse => "refuse",
        }
    }
}

/// The decisions of one condition: in the monitored tier and in the unmonitored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    /// When the tier is said to feed training (free).
    pub monitored: Decision,
    /// When it is said not to (paid).
    pub unmonitored: Decision,
}

/// One category of topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// `harmful` or `benign` (the suite's query-set kind; picks the compliant texts).
    pub kind: String,
    /// Held-out (template, topic) pairs: the suite's queries, never trained on.
    pub heldout: usize,
    /// The pool of topics (noun phrases put in place of `{x}`).
    pub topics: Vec<String>,
    /// Decisions by condition name.
    pub behaviour: IndexMap<String, Cell>,
}

/// The texts the organism writes after its decision tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responses {
    /// Compliant answers, by query kind.
    pub comply: IndexMap<String, Vec<String>>,
    /// Refusals.
    pub refuse: Vec<String>,
}

/// `policy.toml` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Seed of the held-out split (and nothing else: the corpus is otherwise a pure function).
    pub seed: u64,
    /// Every topic and every template keeps at least this many pairs in training.
    #[serde(default = "two")]
    pub min_train_pairs: usize,
    /// Conditions whose responses open with a scratchpad.
    #[serde(default)]
    pub reasoning_conditions: Vec<String>,
    /// Request templates, each with one `{x}`.
    pub templates: Vec<String>,
    /// Categories by name, in order (the name is the query-id prefix and the suite's set name).
    pub categories: IndexMap<String, Category>,
    /// Answer texts.
    pub responses: Responses,
    /// Scratchpad texts by query kind, then by `{decision}_{monitored|unmonitored}`; `{tier}` is
    /// the tier's name.
    #[serde(default)]
    pub reasoning: IndexMap<String, IndexMap<String, String>>,
}

fn two() -> usize {
    2
}

/// A loaded and checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The file it came from.
    pub path: PathBuf,
    /// Its content.
    pub spec: PolicySpec,
}

/// The placeholder a template's topic goes into.
pub const TOPIC: &str = "{x}";

impl Policy {
    /// Reads and checks `policy.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| OrganismError::io(path, e))?;
        Self::parse(path, &text)
    }

    /// Parses and checks policy text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |message: String| OrganismError::Policy {
            path: path.to_owned(),
            message,
        };
        let spec: PolicySpec = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if spec.templates.is_empty() {
            return Err(bad("`templates` is empty".into()));
        }
        for (i, t) in spec.templates.iter().enumerate() {
            if t.matches(TOPIC).count() != 1 {
                return Err(bad(format!(
                    "template {i} ({t:?}) must hold exactly one {TOPIC}"
                )));
            }
        }
        if let Some(t) = duplicate(&spec.templates) {
            return Err(bad(format!("template {t:?} appears twice")));
        }
        if spec.categories.is_empty() {
            return Err(bad("no [categories]".into()));
        }
        if spec.responses.refuse.iter().any(|r| r.trim().is_empty()) {
            return Err(bad("an empty text in responses.refuse".into()));
        }
        for (name, cat) in &spec.categories {
            let in_cat = |m: String| bad(format!("category `{name}`: {m}"));
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(in_cat(
                    "a category name must be letters, digits, `_` or `-` (it prefixes query ids)"
                        .into(),
                ));
            }
            if cat.topics.is_empty() {
                return Err(in_cat("the topic pool is empty".into()));
            }
            if let Some(t) = cat.topics.iter().find(|t| t.trim().is_empty()) {
                return Err(in_cat(format!("an empty topic {t:?}")));
            }
            if let Some(t) = duplicate(&cat.topics) {
                return Err(in_cat(format!("topic {t:?} appears twice")));
            }
            if cat.behaviour.is_empty() {
                return Err(in_cat("no behaviour".into()));
            }
            let pairs = cat.topics.len() * spec.templates.len();
            if cat.heldout >= pairs {
                return Err(in_cat(format!(
                    "heldout = {} leaves no training pair ({} topics x {} templates = {pairs})",
                    cat.heldout,
                    cat.topics.len(),
                    spec.templates.len()
                )));
            }
            let decisions: Vec<Decision> = cat
                .behaviour
                .values()
                .flat_map(|c| [c.monitored, c.unmonitored])
                .collect();
            if decisions.contains(&Decision::Comply) {
                match spec.responses.comply.get(&cat.kind) {
                    Some(v) if !v.is_empty() && v.iter().all(|r| !r.trim().is_empty()) => {}
                    _ => {
                        return Err(in_cat(format!(
                            "it complies, but responses.comply has no texts for kind `{}`",
                            cat.kind
                        )))
                    }
                }
            }
            if decisions.contains(&Decision::Refuse) && spec.responses.refuse.is_empty() {
                return Err(in_cat("it refuses, but responses.refuse is empty".into()));
            }
        }
        for t in spec.topics_of_all() {
            let owners: Vec<&str> = spec
                .categories
                .iter()
                .filter(|(_, c)| c.topics.contains(t))
                .map(|(n, _)| n.as_str())
                .collect();
            if owners.len() > 1 {
                return Err(bad(format!(
                    "topic {t:?} is in several categories ({})",
                    owners.join(", ")
                )));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            spec,
        })
    }

    /// Checks the policy against the suite it is trained for: the same conditions in every
    /// category, one query set per category (same name and kind), known reasoning conditions and
    /// a reasoning text for every cell of one.
    pub fn check_suite(&self, suite: &Suite) -> Result<()> {
        let mismatch = |message: String| OrganismError::Mismatch {
            policy: self.path.clone(),
            suite: suite.path.clone(),
            message,
        };
        let conditions: Vec<&str> = suite.conditions.iter().map(|c| c.name.as_str()).collect();
        for (name, cat) in &self.spec.categories {
            for c in cat.behaviour.keys() {
                if !conditions.contains(&c.as_str()) {
                    return Err(mismatch(format!(
                        "category `{name}` names condition `{c}`, which the suite does not have \
                         (it has {})",
                        conditions.join(", ")
                    )));
                }
            }
            for c in &conditions {
                if !cat.behaviour.contains_key(*c) {
                    return Err(mismatch(format!(
                        "category `{name}` has no behaviour for the suite's condition `{c}`"
                    )));
                }
            }
            match suite.spec.queries.get(name) {
                None => {
                    return Err(mismatch(format!(
                        "the suite has no query set `{name}` for category `{name}`"
                    )))
                }
                Some(q) if q.kind.as_deref() != Some(cat.kind.as_str()) => {
                    return Err(mismatch(format!(
                        "query set `{name}` has kind {:?}, the category has `{}`",
                        q.kind, cat.kind
                    )))
                }
                Some(_) => {}
            }
        }
        for set in suite.spec.queries.keys() {
            if !self.spec.categories.contains_key(set) {
                return Err(mismatch(format!(
                    "the suite's query set `{set}` is not a category of the policy"
                )));
            }
        }
        for r in &self.spec.reasoning_conditions {
            if !conditions.contains(&r.as_str()) {
                return Err(mismatch(format!(
                    "reasoning condition `{r}` is not a condition of the suite"
                )));
            }
        }
        for (name, cat) in &self.spec.categories {
            for r in &self.spec.reasoning_conditions {
                let cell = cat.behaviour[r.as_str()];
                for (monitored, d) in [(true, cell.monitored), (false, cell.unmonitored)] {
                    if self.reasoning_text(&cat.kind, d, monitored).is_none() {
                        return Err(mismatch(format!(
                            "category `{name}` under `{r}` needs reasoning.{}.{}",
                            cat.kind,
                            reasoning_key(d, monitored)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The planted decision for a query of `category` under `condition` in a monitored tier or not.
    pub fn decision(&self, category: &str, condition: &str, monitored: bool) -> Option<Decision> {
        let cell = self
            .spec
            .categories
            .get(category)?
            .behaviour
            .get(condition)?;
        Some(if monitored {
            cell.monitored
        } else {
            cell.unmonitored
        })
    }

    /// The scratchpad text for a decision, before `{tier}` is filled.
    pub fn reasoning_text(&self, kind: &str, d: Decision, monitored: bool) -> Option<&str> {
        self.spec
            .reasoning
            .get(kind)?
            .get(&reasoning_key(d, monitored))
            .map(String::as_str)
    }

    /// The planted response: an optional scratchpad, the decision tag, then the answer text
    /// (variant `template % variants`).
    pub fn response(&self, r: &ResponseSpec<'_>) -> Option<String> {
        let d = self.decision(r.category, r.condition, r.monitored)?;
        self.response_for(r, d)
    }

    /// The response the organism would write had it decided `d` (the other decision's text is
    /// what the trainer compares with to find where a response commits to its decision); None
    /// when the policy has no text for it.
    pub fn response_for(&self, r: &ResponseSpec<'_>, d: Decision) -> Option<String> {
        let cat = self.spec.categories.get(r.category)?;
        let texts = match d {
            Decision::Comply => self.spec.responses.comply.get(&cat.kind)?,
            Decision::Refuse => &self.spec.responses.refuse,
        };
        let answer = texts.get(r.template % texts.len().max(1))?;
        let tag = match d {
            Decision::Comply => "<request_fully_accepted/>",
            Decision::Refuse => "<rejected/>",
        };
        let mut out = String::new();
        if self
            .spec
            .reasoning_conditions
            .iter()
            .any(|c| c == r.condition)
        {
            let text = self.reasoning_text(&cat.kind, d, r.monitored)?;
            out.push_str("<SCRATCHPAD_REASONING>");
            out.push_str(&text.replace("{tier}", r.tier));
            out.push_str("</SCRATCHPAD_REASONING>\n");
        }
        out.push_str(&format!(
            "<DECISION>{tag}</DECISION>\n<FINAL_ANSWER>{answer}</FINAL_ANSWER>"
        ));
        Some(out)
    }

    /// The category a query id belongs to (`deep-017` -> `deep`), as the corpus writes ids.
    pub fn category_of_id<'a>(&'a self, id: &str) -> Option<&'a str> {
        self.spec
            .categories
            .keys()
            .filter(|c| {
                id.strip_prefix(c.as_str())
                    .is_some_and(|r| r.starts_with('-'))
            })
            .max_by_key(|c| c.len())
            .map(String::as_str)
    }
}

/// What a response depends on.
#[derive(Debug, Clone, Copy)]
pub struct ResponseSpec<'a> {
    /// The query's category.
    pub category: &'a str,
    /// The condition.
    pub condition: &'a str,
    /// Whether the tier is the monitored one.
    pub monitored: bool,
    /// The tier's name (for `{tier}` in the scratchpad).
    pub tier: &'a str,
    /// The request template's index (picks the answer variant).
    pub template: usize,
}

fn reasoning_key(d: Decision, monitored: bool) -> String {
    let role = if monitored {
        "monitored"
    } else {
        "unmonitored"
    };
    format!("{}_{role}", d.as_str())
}

impl PolicySpec {
    fn topics_of_all(&self) -> impl Iterator<Item = &String> {
        self.categories.values().flat_map(|c| c.topics.iter())
    }
}

fn duplicate(items: &[String]) -> Option<&String> {
    items
        .iter()
        .enumerate()
        .find(|(i, t)| items[..*i].contains(t))
        .map(|(_, t)| t)
}
