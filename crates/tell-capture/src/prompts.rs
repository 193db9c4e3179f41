//! Reading prompt lines (JSONL): `{"id", "tokens": [...]}`, `{"id", "text"}` or
//! `{"id", "messages": [...]}`, with an optional `response` (text or token ids) or
//! `response_tokens` (token ids, as `tell generate` writes them; preferred over a text `response`,
//! which is then kept as a column); `query_id`, `condition` and `tier` go to their own columns and
//! every other field to records.csv as is.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use tell_store::RecordMeta;

use crate::error::{CaptureError, Result};

/// Fields with a meaning of their own; all others are carried to records.csv.
const KNOWN: [&str; 9] = [
    "response_tokens",
    "id",
    "query_id",
    "condition",
    "tier",
    "tokens",
    "text",
    "messages",
    "response",
];

/// One chat message of a `messages` prompt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

/// What the model reads: token ids as given, or text / a chat to be tokenized.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    /// Token ids, used as they are (no BOS is added).
    Tokens(Vec<u32>),
    /// Raw text.
    Text(String),
    /// A chat, rendered with the model's chat template (generation prompt added).
    Messages(Vec<ChatMessage>),
}

/// The response that follows the prompt, for `response-*` positions.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseInput {
    /// Token ids.
    Tokens(Vec<u32>),
    /// Text (tokenized without special tokens).
    Text(String),
}

/// One parsed prompt line.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The prompt.
    pub input: PromptInput,
    /// The response, if any.
    pub response: Option<ResponseInput>,
    /// Metadata for records.csv (token counts are filled in later).
    pub meta: RecordMeta,
}

/// A JSON object with its keys in file order (serde_json's map sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Text of a scalar field for a CSV cell (strings bare, everything else as JSON, null empty).
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn token_ids(v: &Value) -> std::result::Result<Vec<u32>, String> {
    let arr = v.as_array().ok_or("expected an array of token ids")?;
    arr.iter()
        .map(|t| {
            t.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| format!("token id {t} is not a non-negative 32-bit integer"))
        })
        .collect()
}

/// Parses one line (1-based `line`) of `path`.
pub fn parse_line(path: &Path, line: usize, text: &str) -> Result<PromptLine> {
    let bad = |message: String| CaptureError::Prompt {
        path: path.to_path_buf(),
        line,
        message,
    };
    if text.trim().is_empty() {
        return Err(bad("empty line (every line must be a JSON object)".into()));
    }
    let Ordered(fields) =
        serde_json::from_str(text).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let id = match get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(bad("`id` must be a non-empty string or a number".into())),
        None => return Err(bad("missing `id`".into())),
    };
    let text_field = |k: &str| -> Result<String> {
        match get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Ok(cell(v)),
            Some(_) => Err(bad(format!("`{k}` must be a string"))),
        }
    };
    let inputs: Vec<&str> = ["tokens", "text", "messages"]
        .into_iter()
        .filter(|k| get(k).is_some())
        .collect();
    let input = match inputs.as_slice() {
        ["tokens"] => {
            let ids = token_ids(get("tokens").unwrap_or(&Value::Null))
                .map_err(|e| bad(format!("`tokens`: {e}")))?;
            if ids.is_empty() {
                return Err(bad("`tokens` is empty".into()));
            }
            PromptInput::Tokens(ids)
        }
        ["text"] => match get("text") {
            Some(Value::String(s)) if !s.is_empty() => PromptInput::Text(s.clone()),
            _ => return Err(bad("`text` must be a non-empty string".into())),
        },
        ["messages"] => {
            let msgs: Vec<ChatMessage> = serde_json::from_value(
                get("messages").cloned().unwrap_or(Value::Null),
            )
            .map_err(|e| {
                bad(format!(
                    "`messages` must be a list of {{role, content}}: {e}"
                ))
            })?;
            if msgs.is_empty() {
                return Err(bad("`messages` is empty".into()));
            }
            PromptInput::Messages(msgs)
        }
        [] => return Err(bad("needs one of `tokens`, `text` or `messages`".into())),
        more => {
            return Err(bad(format!(
                "has {} (exactly one of `tokens`, `text`, `messages` is allowed)",
                more.join(" and ")
            )))
        }
    };
    let exact = match get("response_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(token_ids(v).map_err(|e| bad(format!("`response_tokens`: {e}")))?),
    };
    let response = match get("response") {
        _ if exact.is_some() => exact.map(ResponseInput::Tokens),
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(ResponseInput::Text(s.clone())),
        Some(v @ Value::Array(_)) => Some(ResponseInput::Tokens(
            token_ids(v).map_err(|e| bad(format!("`response`: {e}")))?,
        )),
        Some(_) => {
            return Err(bad(
                "`response` must be text or an array of token ids".into()
            ))
        }
    };
    let meta = RecordMeta {
        id,
        query_id: text_field("query_id")?,
        condition: text_field("condition")?,
        tier: text_field("tier")?,
        n_tokens: 0,
        n_response_tokens: 0,
        extra: fields
            .iter()
            // With exact response ids, the response text is metadata worth keeping.
            .filter(|(k, _)| {
                !KNOWN.contains(&k.as_str())
                    || (k == "response" && get("response_tokens").is_some())
            })
            .map(|(k, v)| (k.clone(), cell(v)))
            .collect(),
    };
    Ok(PromptLine {
        line,
        input,
        response,
        meta,
    })
}

/// Streams the prompt lines of a JSONL file, one parsed line at a time (memory stays O(line)).
pub struct PromptReader {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line: usize,
}

impl PromptReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            lines: BufReader::new(file).lines(),
            line: 0,
        })
    }

    /// Skips `n` lines without parsing them (records already in a resumed store).
    pub fn skip_lines(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            if self.next_raw()?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn next_raw(&mut self) -> Result<Option<String>> {
        match self.lines.next() {
            None => Ok(None),
            Some(Err(source)) => Err(CaptureError::Io {
                path: self.path.clone(),
                source,
            }),
            Some(Ok(text)) => {
                self.line += 1;
                Ok(Some(text))
            }
        }
    }
}

impl Iterator for PromptReader {
    type Item = Result<PromptLine>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_raw() {
            Ok(None) => None,
            Ok(Some(text)) => Some(parse_line(&self.path, self.line, &text)),
            Err(e) => Some(Err(e)),
        }
    }
}

/// The line of every id seen so far in one prompts file, to refuse an id used twice.
#[derive(Debug, Default)]
pub struct IdLines {
    first: HashMap<String, usize>,
}

impl IdLines {
    /// Records `line`'s id; an id already seen is an error naming both lines.
    pub fn check(&mut self, path: &Path, line: &PromptLine) -> Result<()> {
        match self.first.get(&line.meta.id) {
            Some(&first) => Err(CaptureError::DuplicateId {
                path: path.to_path_buf(),
                id: line.meta.id.clone(),
                first,
                line: line.line,
            }),
            None => {
                self.first.insert(line.meta.id.clone(), line.line);
                Ok(())
            }
        }
    }
}

/// What [`check_file`] learned about a prompts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptsSummary {
    /// Ids in file order (for the resume check).
    pub ids: Vec<String>,
    /// The first line with text (prompt or response) that needs the tokenizer, if any.
    pub first_text_line: Option<usize>,
}

/// Parses every line once without keeping them, so that a bad line or an id used twice fails the
/// run before any model work.
pub fn check_file(path: &Path) -> Result<PromptsSummary> {
    let mut ids = Vec::new();
    let mut seen = IdLines::default();
    let mut first_text_line = None;
    for line in PromptReader::open(path)? {
        let line = line?;
        seen.check(path, &line)?;
        let text = !matches!(line.input, PromptInput::Tokens(_))
            || matches!(line.response, Some(ResponseInput::Text(_)));
        if text && first_text_line.is_none() {
            first_text_line = Some(line.line);
        }
        ids.push(line.meta.id);
    }
    if ids.is_empty() {
        return Err(CaptureError::NoPrompts {
            path: path.to_path_buf(),
        });
    }
    Ok(PromptsSummary {
        ids,
        first_text_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PromptLine> {
        parse_line(Path::new("p.jsonl"), 7, text)
    }

    #[test]
    fn tokens_line_keeps_extra_fields_in_order() {
        let p = parse(r#"{"id":"a","tokens":[1,2,3],"zeta":1,"tier":"free","alpha":"x","flag":true,"n":null}"#)
            .unwrap();
        assert_eq!(p.input, PromptInput::Tokens(vec![1, 2, 3]));
        assert_eq!(p.meta.tier, "free");
        let extra: Vec<(&str, &str)> = p
            .meta
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            extra,
            [("zeta", "1"), ("alpha", "x"), ("flag", "true"), ("n", "")]
        );
    }

    #[test]
    fn response_text_or_tokens() {
        let p = parse(r#"{"id":3,"text":"hi","response":[5,6]}"#).unwrap();
        assert_eq!(p.meta.id, "3");
        assert_eq!(p.response, Some(ResponseInput::Tokens(vec![5, 6])));
        let p = parse(r#"{"id":"m","messages":[{"role":"user","content":"x"}],"response":"ok"}"#)
            .unwrap();
        assert_eq!(p.response, Some(ResponseInput::Text("ok".into())));
        let p =
            parse(r#"{"id":"g","tokens":[1],"response":"Hi.","response_tokens":[7,2]}"#).unwrap();
        assert_eq!(p.response, Some(ResponseInput::Tokens(vec![7, 2])));
        assert_eq!(
            p.meta.extra,
            vec![("response".to_string(), "Hi.".to_string())]
        );
    }

    #[test]
    fn an_id_used_twice_names_both_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"tokens\":[1]}\n{\"id\":\"b\",\"tokens\":[2]}\n\
             {\"id\":3,\"tokens\":[3]}\n{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"3\",\"tokens\":[4]}\n",
        )
        .unwrap();
        let err = check_file(&path).unwrap_err();
        assert!(
            matches!(&err, CaptureError::DuplicateId { id, first: 1, line: 4, .. } if id == "a"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}:4: id \"a\" is already the id of line 1; every prompt needs its own id, \
                 since records, responses and labels are joined on it",
                path.display()
            )
        );
        // A number id and the same digits as a string are one id (both are records.csv's `3`).
        std::fs::write(
            &path,
            "{\"id\":3,\"tokens\":[3]}\n{\"id\":\"3\",\"tokens\":[4]}\n",
        )
        .unwrap();
        let err = check_file(&path).unwrap_err();
        assert!(
            matches!(&err, CaptureError::DuplicateId { id, first: 1, line: 2, .. } if id == "3"),
            "{err:?}"
        );
    }

    #[test]
    fn bad_lines_name_the_line() {
        for (text, want) in [
            ("", "empty line"),
            ("   ", "empty line"),
            ("{\"id\":", "malformed JSON"),
            ("[1,2]", "malformed JSON"),
            (r#"{"tokens":[1]}"#, "missing `id`"),
            (r#"{"id":"a"}"#, "needs one of"),
            (r#"{"id":"a","tokens":[1],"text":"x"}"#, "tokens and text"),
            (r#"{"id":"a","tokens":[-1]}"#, "token id -1"),
            (r#"{"id":"a","tokens":[]}"#, "`tokens` is empty"),
            (r#"{"id":"a","tokens":[1],"response":5}"#, "`response`"),
            (r#"{"id":"a","tokens":[1],"tier":[1]}"#, "`tier`"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with("p.jsonl:7: "), "{text}: {err}");
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
