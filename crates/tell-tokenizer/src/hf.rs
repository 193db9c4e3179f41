//! The side files of an HF tokenizer directory: `tokenizer_config.json` (named special tokens,
//! `add_bos_token`/`add_eos_token`, `chat_template`), `chat_template.jinja` and
//! `generation_config.json` (the end-of-sequence ids generation stops on).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::{Result, TokenizerError};

/// The named special tokens transformers passes to chat templates (`special_tokens_map`).
pub(crate) const NAMED_SPECIALS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// What `tokenizer_config.json` and its neighbours say.
#[derive(Debug, Default)]
pub(crate) struct HfConfig {
    /// Named special tokens set in the config, in [`NAMED_SPECIALS`] order.
    pub named: Vec<(&'static str, String)>,
    /// `add_bos_token`, when the config states it.
    pub add_bos_token: Option<bool>,
    /// `add_eos_token`, when the config states it.
    pub add_eos_token: Option<bool>,
    /// The chat template (`chat_template.jinja` wins over the config's `chat_template`).
    pub chat_template: Option<String>,
    /// `eos_token_id` of `generation_config.json` (one id or a list).
    pub generation_eos_ids: Vec<u32>,
}

pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Json> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| TokenizerError::InvalidConfig {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn invalid(path: &Path, reason: impl Into<String>) -> TokenizerError {
    TokenizerError::InvalidConfig {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// A special token as the config spells it: a string, `{"content": ...}` (a serialized
/// AddedToken) or null.
fn token_string(path: &Path, key: &str, v: &Json) -> Result<Option<String>> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        Json::Object(o) => match o.get("content") {
            Some(Json::String(s)) => Ok(Some(s.clone())),
            _ => Err(invalid(path, format!("`{key}` has no string `content`"))),
        },
        _ => Err(invalid(
            path,
            format!("`{key}` is neither a string nor a token"),
        )),
    }
}

/// `chat_template` is a string, or a list of `{name, template}` of which `default` is used.
fn chat_template(path: &Path, v: &Json) -> Result<Option<String>> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        Json::Array(items) => {
            for item in items {
                let name = item.get("name").and_then(Json::as_str);
                if name == Some("default") {
                    return match item.get("template") {
                        Some(Json::String(s)) => Ok(Some(s.clone())),
                        _ => Err(invalid(path, "the `default` chat template is not a string")),
                    };
                }
            }
            Ok(None)
        }
        _ => Err(invalid(
            path,
            "`chat_template` is neither a string nor a list",
        )),
    }
}

fn flag(path: &Path, obj: &serde_json::Map<String, Json>, key: &str) -> Result<Option<bool>> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(path, format!("`{key}` is not a boolean"))),
    }
}

/// Read the side files next to `tokenizer.json` in `dir`; each one is optional.
pub(crate) fn read_config(dir: &Path) -> Result<HfConfig> {
    let mut cfg = HfConfig::default();
    let config_path = dir.join("tokenizer_config.json");
    if config_path.is_file() {
        let json = read_json(&config_path)?;
        let obj = json
            .as_object()
            .ok_or_else(|| invalid(&config_path, "not a JSON object"))?;
        for name in NAMED_SPECIALS {
            if let Some(v) = obj.get(name) {
                if let Some(s) = token_string(&config_path, name, v)? {
                    cfg.named.push((name, s));
                }
            }
        }
        cfg.add_bos_token = flag(&config_path, obj, "add_bos_token")?;
        cfg.add_eos_token = flag(&config_path, obj, "add_eos_token")?;
        if let Some(v) = obj.get("chat_template") {
            cfg.chat_template = chat_template(&config_path, v)?;
        }
    }
    let jinja_path = dir.join("chat_template.jinja");
    if jinja_path.is_file() {
        cfg.chat_template = Some(read_to_string(&jinja_path)?);
    }
    let gen_path = dir.join("generation_config.json");
    if gen_path.is_file() {
        let json = read_json(&gen_path)?;
        cfg.generation_eos_ids = match json.get("eos_token_id") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Number(n)) => vec![id_of(&gen_path, n)?],
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Json::Number(n) => id_of(&gen_path, n),
                    _ => Err(invalid(&gen_path, "`eos_token_id` holds a non-number")),
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(invalid(&gen_path, "`eos_token_id` is not an id or a list")),
        };
    }
    Ok(cfg)
}

fn id_of(path: &Path, n: &serde_json::Number) -> Result<u32> {
    n.as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| invalid(path, format!("`eos_token_id` {n} is not a token id")))
}

/// `tokenizer.json` inside `dir`, or a clear error naming what is missing.
pub(crate) fn tokenizer_json_in(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("tokenizer.json");
    if path.is_file() {
        Ok(path)
    } else {
        Err(TokenizerError::NotFound {
            path: dir.to_owned(),
            reason: "the directory has no tokenizer.json (and no .gguf file was given)".into(),
        })
    }
}
