//! From a prompt line to the token sequence the model reads, under the context-length policy.
//!
//! Policy: a sequence (prompt + response) longer than the model's `max_position_embeddings` is an
//! error naming the line, unless `--truncate` is given: `left` drops the oldest prompt tokens
//! (keeps the end of the prompt and the whole response: what the model would attend to last),
//! `right` drops tokens from the end (response first, then the prompt's tail). Truncation that
//! would leave no prompt token is still an error, since every position mode needs the prompt.

use std::path::{Path, PathBuf};

use tell_tokenizer::Tokenizer;

use crate::error::{CaptureError, Result};
use crate::prompts::{PromptInput, PromptLine, ResponseInput};

/// The tokens a prompt renders to: token ids as given; text raw (with special tokens) or as a
/// one-turn chat (after `system`, if any); messages through the chat template; chats always with
/// the generation prompt, as transformers' `apply_chat_template(..., add_generation_prompt=True)`.
pub fn render_prompt(
    tokenizer: &Tokenizer,
    input: &PromptInput,
    chat: bool,
    system: Option<&str>,
) -> std::result::Result<Vec<u32>, tell_tokenizer::TokenizerError> {
    let message = |role: &str, content: &str| serde_json::json!({"role": role, "content": content});
    match input {
        PromptInput::Tokens(ids) => Ok(ids.clone()),
        PromptInput::Text(text) if !chat => tokenizer.encode(text, true),
        PromptInput::Text(text) => {
            let mut messages: Vec<_> = system.map(|s| message("system", s)).into_iter().collect();
            messages.push(message("user", text));
            tokenizer.encode_chat(&messages, true)
        }
        PromptInput::Messages(msgs) => {
            let messages: Vec<_> = msgs.iter().map(|m| message(&m.role, &m.content)).collect();
            tokenizer.encode_chat(&messages, true)
        }
    }
}

/// Which end of an over-long sequence `--truncate` cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncate {
    /// Drop the first prompt tokens.
    Left,
    /// Drop the last tokens (response first).
    Right,
}

impl Truncate {
    /// Parses `left` or `right`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "left" => Ok(Truncate::Left),
            "right" => Ok(Truncate::Right),
            _ => Err(CaptureError::Options(format!(
                "--truncate {s:?}: expected left or right"
            ))),
        }
    }
}

/// A prompt line as token ids: `tokens` = prompt then response; the last `n_response` are the
/// response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Prompt tokens followed by response tokens.
    pub tokens: Vec<u32>,
    /// How many trailing tokens are the response.
    pub n_response: usize,
}

/// Turns prompt lines into checked token sequences for one model.
pub struct Encoder {
    path: PathBuf,
    context: usize,
    vocab: usize,
    truncate: Option<Truncate>,
    tokenizer: Option<Tokenizer>,
    chat: bool,
    system: Option<String>,
}

impl Encoder {
    /// An encoder for a model with `context` positions and `vocab` token ids, reading `path`.
    pub fn new(path: &Path, context: usize, vocab: usize, truncate: Option<Truncate>) -> Self {
        Self {
            path: path.to_path_buf(),
            context,
            vocab,
            truncate,
            tokenizer: None,
            chat: true,
            system: None,
        }
    }

    /// Adds the tokenizer for `text` / `messages` prompts and text responses: `text` is rendered
    /// as a one-turn chat (with `system` first) when `chat`, else encoded raw with special tokens,
    /// exactly as `tell generate` renders it.
    pub fn with_tokenizer(
        mut self,
        tokenizer: Tokenizer,
        chat: bool,
        system: Option<String>,
    ) -> Self {
        self.tokenizer = Some(tokenizer);
        self.chat = chat;
        self.system = system;
        self
    }

    fn bad(&self, line: usize, message: String) -> CaptureError {
        CaptureError::Prompt {
            path: self.path.clone(),
            line,
            message,
        }
    }

    fn ids(&self, line: usize, what: &str, ids: &[u32]) -> Result<Vec<u32>> {
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(self.bad(
                line,
                format!(
                    "{what} token id {bad} is outside the model's vocabulary (size {})",
                    self.vocab
                ),
            ));
        }
        Ok(ids.to_vec())
    }

    /// Encodes one line and applies the context policy.
    pub fn encode(&self, p: &PromptLine) -> Result<Encoded> {
        let tokenizer = || {
            self.tokenizer.as_ref().ok_or_else(|| {
                self.bad(
                    p.line,
                    "text needs the model's tokenizer, which was not loaded".into(),
                )
            })
        };
        let tok_err =
            |e: tell_tokenizer::TokenizerError| self.bad(p.line, format!("tokenizing: {e}"));
        let prompt = match &p.input {
            PromptInput::Tokens(ids) => ids.clone(),
            other => render_prompt(tokenizer()?, other, self.chat, self.system.as_deref())
                .map_err(tok_err)?,
        };
        let prompt = self.ids(p.line, "prompt", &prompt)?;
        if prompt.is_empty() {
            return Err(self.bad(p.line, "the prompt encodes to no tokens".into()));
        }
        let response = match &p.response {
            None => Vec::new(),
            Some(ResponseInput::Tokens(ids)) => self.ids(p.line, "response", ids)?,
            Some(ResponseInput::Text(text)) => {
                let ids = tokenizer()?
                    .encode(text, false)
                    .map_err(|e| self.bad(p.line, format!("tokenizing the response: {e}")))?;
                self.ids(p.line, "response", &ids)?
            }
        };
        self.fit(p.line, prompt, response)
    }

    fn fit(&self, line: usize, mut prompt: Vec<u32>, mut response: Vec<u32>) -> Result<Encoded> {
        let total = prompt.len() + response.len();
        if total > self.context {
            let too_long = || CaptureError::TooLong {
                path: self.path.clone(),
                line,
                tokens: total,
                context: self.context,
                with_response: !response.is_empty(),
            };
            match self.truncate {
                None => return Err(too_long()),
                Some(Truncate::Left) => {
                    let drop = total - self.context;
                    if drop >= prompt.len() {
                        return Err(self.bad(
                            line,
                            format!(
                                "the response alone ({} tokens) fills the model's context of {}; \
                                 --truncate left would leave no prompt token",
                                response.len(),
                                self.context
                            ),
                        ));
                    }
                    prompt.drain(..drop);
                }
                Some(Truncate::Right) => {
                    let keep_prompt = prompt.len().min(self.context);
                    prompt.truncate(keep_prompt);
                    response.truncate(self.context - keep_prompt);
                }
            }
        }
        let n_response = response.len();
        prompt.extend(response);
        Ok(Encoded {
            tokens: prompt,
            n_response,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::parse_line;

    fn enc(truncate: Option<Truncate>, line: &str) -> Result<Encoded> {
        let p = parse_line(Path::new("p.jsonl"), 3, line).unwrap();
        Encoder::new(Path::new("p.jsonl"), 4, 10, truncate).encode(&p)
    }

    #[test]
    fn context_policy() {
        let e = enc(None, r#"{"id":"a","tokens":[1,2],"response":[3]}"#).unwrap();
        assert_eq!((e.tokens, e.n_response), (vec![1, 2, 3], 1));
        let err = enc(None, r#"{"id":"a","tokens":[1,2,3],"response":[4,5]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "p.jsonl:3: prompt + response has 5 tokens, more than the model's context of 4"
            ),
            "{err}"
        );
        let line = r#"{"id":"a","tokens":[1,2,3],"response":[4,5]}"#;
        let e = enc(Some(Truncate::Left), line).unwrap();
        assert_eq!((e.tokens, e.n_response), (vec![2, 3, 4, 5], 2));
        let e = enc(Some(Truncate::Right), line).unwrap();
        assert_eq!((e.tokens, e.n_response), (vec![1, 2, 3, 4], 1));
        let e = enc(
            Some(Truncate::Right),
            r#"{"id":"a","tokens":[1,2,3,4,5,6]}"#,
        )
        .unwrap();
        assert_eq!((e.tokens, e.n_response), (vec![1, 2, 3, 4], 0));
        let err = enc(
            Some(Truncate::Left),
            r#"{"id":"a","tokens":[1],"response":[1,2,3,4]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no prompt token"), "{err}");
    }

    #[test]
    fn ids_outside_the_vocabulary_and_text_are_errors() {
        let err = enc(None, r#"{"id":"a","tokens":[1,10]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.jsonl:3: prompt token id 10 is outside"),
            "{err}"
        );
        let err = enc(None, r#"{"id":"a","text":"hi"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs the model's tokenizer"), "{err}");
    }
}
