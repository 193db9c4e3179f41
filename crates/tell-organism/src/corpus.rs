//! The corpus: queries as templates x topics split into training and held-out pairs, and the
//! training examples, rendered by tell-faking from the organism's own suite (the training queries
//! in place of the held-out ones), so training and test prompts are formatted the same way.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tell_faking::{load_queries, render, PromptLine, QueryFormat, QuerySpec, RenderOptions, Suite};

use crate::error::{OrganismError, Result};
use crate::policy::{Decision, Policy, ResponseSpec, TOPIC};
use crate::rng::Rng;

/// One query: a request template filled with a topic of a category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganismQuery {
    /// `{category}-{nnn}` for held-out queries, `{category}-train-{nnn}` for training ones.
    pub id: String,
    /// The request text.
    pub text: String,
    /// The category (planted behaviour).
    pub category: String,
    /// Index of the request template in the policy.
    pub template: usize,
    /// Index of the topic in its category's pool.
    pub topic: usize,
}

/// One training example: the prompt line as the suite renders it, the planted decision and the
/// planted response text (the end-of-turn token is added when tokenizing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The rendered prompt (id `condition/tier/query_id`, messages, tier, ...).
    #[serde(flatten)]
    pub prompt: PromptLine,
    /// The query's category.
    pub category: String,
    /// What the organism must do.
    pub decision: Decision,
    /// Index of the request template (picks the answer variant).
    pub template: usize,
    /// The planted response.
    pub response: String,
}

/// Training and held-out queries plus the rendered training examples.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Queries trained on, by category in policy order.
    pub train: Vec<OrganismQuery>,
    /// Queries never trained on: the suite's queries.
    pub heldout: Vec<OrganismQuery>,
    /// Every training query x condition x tier, with its response.
    pub examples: Vec<Example>,
}

/// Splits every category's (template, topic) pairs into training and held-out queries.
///
/// Pairs are visited in a seeded random order and held out while every topic and every template
/// keeps at least `min_train_pairs` pairs in training; both lists are then sorted by (topic,
/// template) and numbered.
pub fn split_queries(policy: &Policy) -> Result<(Vec<OrganismQuery>, Vec<OrganismQuery>)> {
    let spec = &policy.spec;
    let n_templates = spec.templates.len();
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    for (name, cat) in &spec.categories {
        let mut pairs: Vec<(usize, usize)> = (0..cat.topics.len())
            .flat_map(|x| (0..n_templates).map(move |t| (x, t)))
            .collect();
        Rng::named(spec.seed, name).shuffle(&mut pairs);
        let mut per_topic = vec![n_templates; cat.topics.len()];
        let mut per_template = vec![cat.topics.len(); n_templates];
        let mut held = Vec::new();
        for &(x, t) in &pairs {
            if held.len() == cat.heldout {
                break;
            }
            if per_topic[x] > spec.min_train_pairs && per_template[t] > spec.min_train_pairs {
                per_topic[x] -= 1;
                per_template[t] -= 1;
                held.push((x, t));
            }
        }
        if held.len() < cat.heldout {
            return Err(OrganismError::Policy {
                path: policy.path.clone(),
                message: format!(
                    "category `{name}`: cannot hold out {} pairs while every topic and template \
                     keeps {} in training (at most {})",
                    cat.heldout,
                    spec.min_train_pairs,
                    held.len()
                ),
            });
        }
        held.sort_unstable();
        let mut rest: Vec<(usize, usize)> =
            pairs.into_iter().filter(|p| !held.contains(p)).collect();
        rest.sort_unstable();
        let make = |(x, t): (usize, usize), id: String| OrganismQuery {
            id,
            text: spec.templates[t].replace(TOPIC, &cat.topics[x]),
            category: name.clone(),
            template: t,
            topic: x,
        };
        heldout.extend(
            held.iter()
                .enumerate()
                .map(|(i, &p)| make(p, format!("{name}-{i:03}"))),
        );
        train.extend(
            rest.iter()
                .enumerate()
                .map(|(i, &p)| make(p, format!("{name}-train-{i:03}"))),
        );
    }
    Ok((train, heldout))
}

/// Builds the corpus of `policy` for `suite`: checks them against each other, splits the
/// queries, writes the training queries under `work/train-queries/` and renders them through
/// the suite.
pub fn build(policy: &Policy, suite: &Suite, work: &Path) -> Result<Corpus> {
    policy.check_suite(suite)?;
    let (train, heldout) = split_queries(policy)?;
    let dir =
        std::path::absolute(work.join("train-queries")).map_err(|e| OrganismError::io(work, e))?;
    std::fs::create_dir_all(&dir).map_err(|e| OrganismError::io(&dir, e))?;
    let mut training_suite = suite.clone();
    for (set, spec) in training_suite.spec.queries.iter_mut() {
        let path = dir.join(format!("{set}.jsonl"));
        let rows: Vec<&OrganismQuery> = train.iter().filter(|q| &q.category == set).collect();
        write_jsonl(&path, &rows)?;
        *spec = QuerySpec {
            path,
            format: Some(QueryFormat::Jsonl),
            column: Some("text".into()),
            id_column: Some("id".into()),
            filter: Default::default(),
            limit: None,
            kind: spec.kind.clone(),
        };
    }
    let lines = render(&training_suite, &RenderOptions::default())?;
    let examples = examples_of(policy, suite, lines, &train)?;
    Ok(Corpus {
        train,
        heldout,
        examples,
    })
}

/// The planted response of every rendered prompt line of `queries`.
fn examples_of(
    policy: &Policy,
    suite: &Suite,
    lines: Vec<PromptLine>,
    queries: &[OrganismQuery],
) -> Result<Vec<Example>> {
    let by_id: BTreeMap<&str, &OrganismQuery> =
        queries.iter().map(|q| (q.id.as_str(), q)).collect();
    let mut examples = Vec::with_capacity(lines.len());
    for line in lines {
        let missing = || OrganismError::Mismatch {
            policy: policy.path.clone(),
            suite: suite.path.clone(),
            message: format!("no planted response for `{}`", line.id),
        };
        let q = *by_id.get(line.query_id.as_str()).ok_or_else(missing)?;
        let spec = ResponseSpec {
            category: &q.category,
            condition: &line.condition,
            monitored: line.monitored,
            tier: &line.tier,
            template: q.template,
        };
        let decision = policy
            .decision(&q.category, &line.condition, line.monitored)
            .ok_or_else(missing)?;
        let response = policy.response(&spec).ok_or_else(missing)?;
        examples.push(Example {
            category: q.category.clone(),
            decision,
            template: q.template,
            response,
            prompt: line,
        });
    }
    Ok(examples)
}

/// The suite's own prompts (the held-out queries, as `tell run` renders them) with their planted
/// responses; the suite's query files must hold the corpus's held-out queries ([`check_heldout`]).
pub fn heldout_examples(policy: &Policy, suite: &Suite, corpus: &Corpus) -> Result<Vec<Example>> {
    check_heldout(policy, suite, corpus)?;
    let lines = render(suite, &RenderOptions::default())?;
    examples_of(policy, suite, lines, &corpus.heldout)
}

/// Where the suite reads each category's held-out queries.
pub fn heldout_paths(suite: &Suite) -> Vec<(String, PathBuf)> {
    suite
        .spec
        .queries
        .iter()
        .map(|(set, spec)| (set.clone(), suite.base.join(&spec.path)))
        .collect()
}

/// Writes the held-out queries to the files the suite reads (one JSONL file per category).
pub fn write_heldout(suite: &Suite, corpus: &Corpus) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (set, path) in heldout_paths(suite) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| OrganismError::io(parent, e))?;
        }
        let rows: Vec<&OrganismQuery> = corpus
            .heldout
            .iter()
            .filter(|q| q.category == set)
            .collect();
        write_jsonl(&path, &rows)?;
        written.push(path);
    }
    Ok(written)
}

/// Checks that the suite's query files hold exactly the corpus's held-out queries, so the suite
/// tests what the organism never saw.
pub fn check_heldout(policy: &Policy, suite: &Suite, corpus: &Corpus) -> Result<()> {
    for (set, spec) in &suite.spec.queries {
        let on_disk = load_queries(set, spec, &suite.base)?;
        let expected: Vec<(&str, &str)> = corpus
            .heldout
            .iter()
            .filter(|q| &q.category == set)
            .map(|q| (q.id.as_str(), q.text.as_str()))
            .collect();
        let found: Vec<(&str, &str)> = on_disk
            .iter()
            .map(|q| (q.id.as_str(), q.text.as_str()))
            .collect();
        if found != expected {
            return Err(OrganismError::Mismatch {
                policy: policy.path.clone(),
                suite: suite.path.clone(),
                message: format!(
                    "query set `{set}` ({}) is not the policy's held-out queries; regenerate them \
                     with `tell organism corpus --policy {} --suite {} --out DIR`",
                    suite.base.join(&spec.path).display(),
                    policy.path.display(),
                    suite.path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Writes the training examples as JSONL.
pub fn write_examples(path: &Path, examples: &[Example]) -> Result<()> {
    write_jsonl(path, examples)
}

fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| OrganismError::io(path, e))?;
    let mut w = BufWriter::new(file);
    for row in rows {
        let json = serde_json::to_string(row).map_err(|e| OrganismError::io(path, e.into()))?;
        writeln!(w, "{json}").map_err(|e| OrganismError::io(path, e))?;
    }
    w.flush().map_err(|e| OrganismError::io(path, e))
}
