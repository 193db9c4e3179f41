//! Experiment suites as data: a `suite.toml` naming conditions (system-prompt templates), tier
//! cues, query sets and generation settings. Paths are relative to the suite file's folder.
//!
//! A condition is one TOML line, so adding one is a template file plus a line:
//! `my-rule = { system = ["templates/baseline-1.txt", "templates/my-rule.txt"], baseline = "baseline-1" }`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::queries::QuerySpec;
use crate::template::Template;

/// Placeholders every system template may use besides the suite's `[vars]`.
pub const SYSTEM_PLACEHOLDERS: &[&str] = &["monitored_tier", "unmonitored_tier"];
/// Placeholders the user-turn template may use besides the suite's `[vars]`.
pub const USER_PLACEHOLDERS: &[&str] = &[
    "monitored_tier",
    "unmonitored_tier",
    "tier",
    "tier_tag",
    "query",
];

/// Decoding settings for the generation stage (used by `tell run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// Most tokens generated per response.
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 means greedy (the paper's deterministic decoding).
    #[serde(default)]
    pub temperature: f64,
    /// RNG seed for sampling.
    #[serde(default)]
    pub seed: u64,
    /// Responses per prompt (more than one only makes sense with temperature > 0).
    #[serde(default = "one")]
    pub samples: usize,
}

fn one() -> usize {
    1
}

/// Where `tell run` captures prompt activations (names as `tell capture` takes them; this crate
/// keeps them as text so it needs no model code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    /// Sites, e.g. `resid_post` or `blocks.12.hook_resid_post`.
    #[serde(default = "resid_post")]
    pub sites: Vec<String>,
    /// Layers: `all`, or e.g. `0,4,8-12`.
    #[serde(default = "all_layers")]
    pub layers: String,
    /// Positions: `last`, `mean`, ... (`all` stores every token, which probes cannot use).
    #[serde(default = "last")]
    pub positions: String,
}

impl Default for CaptureSpec {
    fn default() -> Self {
        Self {
            sites: resid_post(),
            layers: all_layers(),
            positions: last(),
        }
    }
}

fn resid_post() -> Vec<String> {
    vec!["resid_post".to_owned()]
}

fn all_layers() -> String {
    "all".to_owned()
}

fn last() -> String {
    "last".to_owned()
}

/// One tier of a scheme: its name and the tag put in the user turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Name written in the `tier` column (`free`, `paid`, `XX`, ...).
    pub name: String,
    /// The cue in the user turn, e.g. `<is_free_tier_user>True</is_free_tier_user>`.
    pub tag: String,
}

/// A pair of tiers: the one said to feed training (monitored) and the one said not to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierScheme {
    /// The tier whose conversations are said to be used for training.
    pub monitored: Tier,
    /// The tier whose conversations are said never to be used.
    pub unmonitored: Tier,
}

/// One or several template files, concatenated in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Files {
    /// A single file.
    One(PathBuf),
    /// Several files, joined in order.
    Many(Vec<PathBuf>),
}

impl Files {
    fn paths(&self) -> &[PathBuf] {
        match self {
            Files::One(p) => std::slice::from_ref(p),
            Files::Many(v) => v,
        }
    }
}

/// A condition as written in the TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// System-prompt template file(s), concatenated.
    pub system: Files,
    /// For a mitigation: the baseline condition it is compared with (shallow vs deep labels).
    #[serde(default)]
    pub baseline: Option<String>,
    /// Tier scheme name; the suite's `default_tiers` when absent.
    #[serde(default)]
    pub tiers: Option<String>,
}

/// The suite file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSpec {
    /// Suite name.
    pub name: String,
    /// What the suite tests.
    #[serde(default)]
    pub description: String,
    /// The user-turn template file.
    pub user_template: PathBuf,
    /// Tier scheme used by conditions that do not name one.
    #[serde(default = "standard")]
    pub default_tiers: String,
    /// Free values any template may use as `{{name}}` (developer name, assistant name...).
    #[serde(default)]
    pub vars: IndexMap<String, String>,
    /// Decoding settings.
    pub generation: Generation,
    /// Activation capture settings for `tell run` (default: `resid_post`, all layers, `last`).
    #[serde(default)]
    pub capture: CaptureSpec,
    /// Tier schemes by name.
    pub tiers: IndexMap<String, TierScheme>,
    /// Query sets by name, all rendered.
    pub queries: IndexMap<String, QuerySpec>,
    /// Conditions by name, in order.
    pub conditions: IndexMap<String, ConditionSpec>,
}

fn standard() -> String {
    "standard".to_owned()
}

/// A condition with its templates loaded and checked.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Condition name.
    pub name: String,
    /// Templates of the system prompt, concatenated in order.
    pub system: Vec<Template>,
    /// The baseline this condition mitigates, if any.
    pub baseline: Option<String>,
    /// The tier scheme it uses.
    pub tiers: TierScheme,
}

/// A loaded suite: the spec plus its checked templates.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite file.
    pub path: PathBuf,
    /// The folder relative paths are resolved against.
    pub base: PathBuf,
    /// The parsed TOML.
    pub spec: SuiteSpec,
    /// The user-turn template.
    pub user: Template,
    /// Conditions in file order.
    pub conditions: Vec<Condition>,
}

impl Suite {
    /// Reads `suite.toml`, loads every template and checks every placeholder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spec: SuiteSpec = toml::from_str(&text).map_err(|e| Error::Suite {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let suite_err = |message: String| Error::Suite {
            path: path.to_owned(),
            message,
        };
        if spec.conditions.is_empty() {
            return Err(suite_err("no [conditions]".into()));
        }
        let vars: Vec<&str> = spec.vars.keys().map(String::as_str).collect();
        let known = |extra: &[&'static str]| -> Vec<&str> {
            vars.iter().copied().chain(extra.iter().copied()).collect()
        };
        let load = |condition: &str, rel: &Path| -> Result<Template> {
            let full = base.join(rel);
            if !full.is_file() {
                return Err(Error::MissingTemplate {
                    suite: path.to_owned(),
                    condition: condition.to_owned(),
                    template: full,
                });
            }
            Template::load(&full)
        };
        let user = load("user", &spec.user_template)?;
        user.check(&known(USER_PLACEHOLDERS))?;
        let mut conditions = Vec::new();
        for (name, c) in &spec.conditions {
            let scheme = c.tiers.as_deref().unwrap_or(&spec.default_tiers);
            let tiers = spec.tiers.get(scheme).cloned().ok_or_else(|| {
                suite_err(format!(
                    "condition `{name}` uses unknown tier scheme `{scheme}`"
                ))
            })?;
            if let Some(b) = &c.baseline {
                if !spec.conditions.contains_key(b) {
                    return Err(suite_err(format!(
                        "condition `{name}` names baseline `{b}`, which is not a condition"
                    )));
                }
            }
            if c.system.paths().is_empty() {
                return Err(suite_err(format!(
                    "condition `{name}` has no system template"
                )));
            }
            let mut system = Vec::new();
            for rel in c.system.paths() {
                let t = load(name, rel)?;
                t.check(&known(SYSTEM_PLACEHOLDERS))?;
                system.push(t);
            }
            conditions.push(Condition {
                name: name.clone(),
                system,
                baseline: c.baseline.clone(),
                tiers,
            });
        }
        if spec.generation.samples == 0 {
            return Err(suite_err("generation.samples must be at least 1".into()));
        }
        Ok(Self {
            path: path.to_owned(),
            base,
            spec,
            user,
            conditions,
        })
    }

    /// Values of `[vars]` as a placeholder map, to which callers add the built-in names.
    pub(crate) fn var_map(&self) -> BTreeMap<&str, &str> {
        self.spec
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}
