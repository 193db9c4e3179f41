//! [`Tokenizer`]: a `tokenizers` tokenizer plus what transformers keeps beside it (named special
//! tokens, BOS/EOS policy, chat template, end-of-turn tokens), loaded from an HF directory or a GGUF.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use tell_gguf::GgufTokenizer;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::AddedToken;

use crate::chat::ChatTemplate;
use crate::error::{Result, TokenizerError};
use crate::{gguf, hf};

/// Special tokens that end an assistant turn or the text, in the vocabularies of common
/// LLaMA-family chat models: generation stops on any of them that the vocabulary has.
pub const END_OF_TURN_TOKENS: [&str; 7] = [
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_text|>",
    "<|endoftext|>",
];

/// A tokenizer that encodes, decodes and renders chat templates as transformers does.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Template variables (`bos_token`, `eos_token`, ...): transformers' `special_tokens_map`.
    specials: BTreeMap<String, String>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    stop_ids: Vec<u32>,
    chat_template: Option<ChatTemplate>,
    source: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("specials", &self.specials)
            .field("stop_ids", &self.stop_ids)
            .finish_non_exhaustive()
    }
}

/// What the loaders collect before [`Tokenizer::assemble`].
struct Parts {
    inner: tokenizers::Tokenizer,
    named: Vec<(&'static str, String)>,
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    chat_template: Option<String>,
    extra_stop_ids: Vec<u32>,
    source: String,
}

impl Tokenizer {
    /// Load from a path: a `.gguf` file, a `tokenizer.json` file, or a directory holding
    /// `tokenizer.json` (+ `tokenizer_config.json`, `chat_template.jinja`, `generation_config.json`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if !path.exists() {
            return Err(TokenizerError::NotFound {
                path: path.to_owned(),
                reason: "no such file or directory".into(),
            });
        }
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            return Self::from_gguf_file(path);
        }
        Self::from_tokenizer_json(path)
    }

    /// Load `tokenizer.json` and its side files from an HF model or tokenizer directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_tokenizer_json(hf::tokenizer_json_in(dir.as_ref())?)
    }

    /// Load a `tokenizer.json`; side files are read from the same directory when present.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_owned(),
            source,
        })?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            TokenizerError::InvalidTokenizer {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let cfg = hf::read_config(dir)?;
        Self::assemble(Parts {
            inner,
            named: cfg.named,
            add_bos: cfg.add_bos_token,
            add_eos: cfg.add_eos_token,
            chat_template: cfg.chat_template,
            extra_stop_ids: cfg.generation_eos_ids,
            source: path.display().to_string(),
        })
    }

    /// Read the tokenizer embedded in a GGUF file (metadata only; tensors are not touched).
    pub fn from_gguf_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = tell_gguf::GgufFile::open(path)?;
        let g = GgufTokenizer::from_metadata(file.metadata())?;
        let mut tok = Self::from_gguf(&g)?;
        tok.source = path.display().to_string();
        Ok(tok)
    }

    /// Build the tokenizer transformers builds from these GGUF tokenizer keys
    /// (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`).
    pub fn from_gguf(g: &GgufTokenizer) -> Result<Self> {
        let parts = gguf::build(g)?;
        Self::assemble(Parts {
            inner: parts.inner,
            named: parts.named,
            // transformers passes the GGUF's add_bos/add_eos flags as explicit settings.
            add_bos: Some(g.add_bos_token.unwrap_or(false)),
            add_eos: Some(g.add_eos_token.unwrap_or(false)),
            chat_template: g.chat_template.clone(),
            extra_stop_ids: g.eot_token_id.into_iter().collect(),
            source: "GGUF tokenizer".into(),
        })
    }

    /// Mirror `TokenizersBackend.__init__`: add named special tokens the vocabulary lacks, and
    /// rebuild the post-processor from `add_bos_token`/`add_eos_token` when they are stated (or
    /// when there is none).
    fn assemble(p: Parts) -> Result<Self> {
        let Parts {
            mut inner,
            named,
            add_bos,
            add_eos,
            chat_template,
            extra_stop_ids,
            source,
        } = p;
        let added: Vec<String> = inner
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .collect();
        let missing: Vec<AddedToken> = named
            .iter()
            .filter(|(_, t)| !added.contains(t))
            .map(|(_, t)| AddedToken::from(t.clone(), true).normalized(false))
            .collect();
        if !missing.is_empty() {
            inner
                .add_special_tokens(missing)
                .map_err(|e| TokenizerError::InvalidTokenizer {
                    path: source.clone().into(),
                    reason: format!("adding special tokens: {e}"),
                })?;
        }
        let specials: BTreeMap<String, String> = named
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let id = |name: &str| specials.get(name).and_then(|t| inner.token_to_id(t));
        let (bos_id, eos_id) = (id("bos_token"), id("eos_token"));
        if add_bos.is_some() || add_eos.is_some() || inner.get_post_processor().is_none() {
            let bos = bos_id.map(|i| (specials["bos_token"].clone(), i));
            let eos = eos_id.map(|i| (specials["eos_token"].clone(), i));
            let pp = template_processor(
                bos.filter(|_| add_bos == Some(true)),
                eos.filter(|_| add_eos == Some(true)),
            )?;
            inner.with_post_processor(Some(pp));
        }
        let mut stop_ids: Vec<u32> = eos_id.into_iter().chain(extra_stop_ids).collect();
        for name in END_OF_TURN_TOKENS {
            if let Some(i) = inner.token_to_id(name) {
                stop_ids.push(i);
            }
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let chat_template = chat_template.map(ChatTemplate::new).transpose()?;
        Ok(Self {
            inner,
            specials,
            bos_id,
            eos_id,
            stop_ids,
            chat_template,
            source,
        })
    }

    /// Token ids of `text`; `add_special_tokens` applies the post-processor (e.g. a BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; `skip_special_tokens` drops special tokens (BOS, `<|eot_id|>`, ...).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let vocab_size = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(TokenizerError::UnknownId { id, vocab_size });
        }
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// The token string of `id` as the vocabulary spells it (byte-level: `Ġis` for " is").
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token string as the vocabulary spells it (added tokens included).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Whether `id` is an added token marked special (skipped by `decode(.., true)`).
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .get_added_tokens_decoder()
            .get(&id)
            .is_some_and(|t| t.special)
    }

    /// The BOS token id, when the tokenizer names one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The EOS token id, when the tokenizer names one.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The first end-of-turn token ([`END_OF_TURN_TOKENS`] order) the vocabulary has.
    pub fn end_of_turn_id(&self) -> Option<u32> {
        END_OF_TURN_TOKENS
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
    }

    /// Ids generation stops on: EOS, the GGUF's EOT, `generation_config.json`'s `eos_token_id`s
    /// and every [`END_OF_TURN_TOKENS`] entry in the vocabulary; sorted, without repeats.
    pub fn stop_token_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Named special tokens (`bos_token`, `eos_token`, ...) as passed to chat templates.
    pub fn special_tokens_map(&self) -> &BTreeMap<String, String> {
        &self.specials
    }

    /// The chat template, when the tokenizer has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Replace the chat template (e.g. with one given on the command line).
    pub fn set_chat_template(&mut self, source: impl Into<String>) -> Result<()> {
        self.chat_template = Some(ChatTemplate::new(source)?);
        Ok(())
    }

    /// Render `messages` with the chat template, as `apply_chat_template(.., tokenize=False)`.
    pub fn render_chat<M: Serialize>(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template =
            self.chat_template
                .as_ref()
                .ok_or_else(|| TokenizerError::NoChatTemplate {
                    source_desc: self.source.clone(),
                })?;
        template.render(messages, add_generation_prompt, &self.specials)
    }

    /// Ids of the rendered chat; encoded without adding special tokens again, since the template
    /// writes BOS and turn markers itself.
    pub fn encode_chat<M: Serialize>(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        let text = self.render_chat(messages, add_generation_prompt)?;
        self.encode(&text, false)
    }

    /// Where this tokenizer was loaded from (for messages).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// transformers' `update_post_processor`: `[bos] $A [eos]` (and the pair form) as a
/// TemplateProcessing.
fn template_processor(
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
) -> Result<PostProcessorWrapper> {
    let special = |t: &str, type_id: u32| json!({"SpecialToken": {"id": t, "type_id": type_id}});
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut tokens = serde_json::Map::new();
    if let Some((t, i)) = &bos {
        single.push(special(t, 0));
        tokens.insert(t.clone(), json!({"id": t, "ids": [i], "tokens": [t]}));
    }
    single.push(seq("A", 0));
    if let Some((t, i)) = &eos {
        single.push(special(t, 0));
        tokens.insert(t.clone(), json!({"id": t, "ids": [i], "tokens": [t]}));
    }
    pair.extend(single.iter().cloned());
    if let Some((t, _)) = &bos {
        pair.push(special(t, 1));
    }
    pair.push(seq("B", 1));
    if let Some((t, _)) = &eos {
        pair.push(special(t, 1));
    }
    let spec = json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": tokens});
    serde_json::from_value(spec).map_err(|e| TokenizerError::Encode(format!("post-processor: {e}")))
}
