//! The tokenizer embedded in a GGUF file, rebuilt the way transformers rebuilds it
//! (`integrations/gguf/gguf_tokenizer_mapping.py`: `byte_level_tokenizer`,
//! `add_gguf_special_tokens`, `set_split_regex`, then `GPT2Tokenizer`/`TokenizersBackend` init).
//! Only `gpt2` (byte-level BPE) vocabularies are built; SentencePiece ones are a typed error.

use std::collections::HashSet;

use serde_json::{json, Map, Value as Json};
use tell_gguf::GgufTokenizer;
use tokenizers::AddedToken;

use crate::error::{Result, TokenizerError};

/// llama.cpp's token type for control tokens (`<|im_end|>`), added as special tokens.
const TOKEN_CONTROL: i32 = 3;
/// llama.cpp's token type for user-defined tokens (`<think>`), added as plain added tokens.
const TOKEN_USER_DEFINED: i32 = 4;

/// LLaMA 3's split regex (transformers' `_LLAMA3_SPLIT`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's split regex (single digits).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 3.5's split regex (marks join letters).
const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Mistral's tekken split regex.
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o's split regex (also LLaMA 4).
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex transformers uses for a `tokenizer.ggml.pre` name (`GGUF_PRE_TOKENIZER_SPLITS`);
/// `None` keeps GPT-2's byte-level regex.
fn split_regex(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2_SPLIT,
        "qwen35" => QWEN35_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// GPT-2's byte-to-character table (`bytes_to_unicode`): printable bytes map to themselves, the
/// others to code points from U+0100 on.
pub(crate) fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        table[b as usize] = if printable {
            char::from(b)
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\u{FFFD}')
        };
    }
    table
}

/// What the GGUF builder hands to [`crate::Tokenizer`].
pub(crate) struct GgufParts {
    /// The assembled `tokenizers` tokenizer (no post-processor yet).
    pub inner: tokenizers::Tokenizer,
    /// Token strings of the named special tokens (`bos_token`, `eos_token`, `unk_token`, `pad_token`).
    pub named: Vec<(&'static str, String)>,
}

/// Build the byte-level BPE tokenizer transformers builds from this GGUF's keys.
pub(crate) fn build(g: &GgufTokenizer) -> Result<GgufParts> {
    if g.model != "gpt2" {
        return Err(TokenizerError::UnsupportedGguf {
            model: g.model.clone(),
        });
    }
    let spelling = bytes_to_unicode();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));

    // Tokens outside the byte alphabet are re-spelled byte by byte; a repeated spelling keeps the
    // last id, as a Python dict comprehension does.
    let mut vocab = Map::new();
    for (id, token) in g.tokens.iter().enumerate() {
        let key = if in_alphabet(token) {
            token.clone()
        } else {
            token.bytes().map(|b| spelling[b as usize]).collect()
        };
        vocab.insert(key, json!(id));
    }
    let merges = g
        .merges
        .as_ref()
        .ok_or_else(|| TokenizerError::InvalidGguf {
            reason: "a gpt2 vocabulary without tokenizer.ggml.merges".into(),
        })?;
    let mut pairs = Vec::with_capacity(merges.len());
    for (i, m) in merges.iter().enumerate() {
        let parts: Vec<&str> = m.split(' ').collect();
        if parts.len() != 2 {
            return Err(TokenizerError::InvalidGguf {
                reason: format!("merge {i} ({m:?}) is not two tokens separated by one space"),
            });
        }
        pairs.push(json!([parts[0], parts[1]]));
    }
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let pre_tokenizer = match g.pre.as_deref().and_then(split_regex) {
        Some(re) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
            byte_level(false),
        ]}),
        None => byte_level(true),
    };
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": Json::Object(vocab),
            "merges": pairs,
        },
    });
    let bytes = serde_json::to_vec(&spec).map_err(|e| TokenizerError::InvalidGguf {
        reason: e.to_string(),
    })?;
    let mut inner =
        tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::InvalidGguf {
            reason: format!("BPE from the GGUF vocabulary and merges: {e}"),
        })?;
    let add_err = |e: tokenizers::Error| TokenizerError::InvalidGguf {
        reason: format!("adding special tokens: {e}"),
    };

    // GPT2Tokenizer's own defaults (unk/bos/eos `<|endoftext|>`) are added first.
    inner
        .add_special_tokens([AddedToken::from("<|endoftext|>", true).normalized(false)])
        .map_err(add_err)?;
    let types = g.token_types.as_deref().unwrap_or(&[]);
    // Control tokens outside the byte alphabet are llama.cpp mislabels: transformers skips them.
    let control: Vec<AddedToken> = g
        .tokens
        .iter()
        .zip(types)
        .filter(|(t, ty)| **ty == TOKEN_CONTROL && in_alphabet(t))
        .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    inner.add_special_tokens(control).map_err(add_err)?;
    let known = inner.get_vocab(true);
    let user: Vec<AddedToken> = g
        .tokens
        .iter()
        .zip(types)
        .filter(|(t, ty)| **ty == TOKEN_USER_DEFINED && known.contains_key(t.as_str()))
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    inner.add_tokens(user).map_err(add_err)?;

    let token_of = |key: &str, id: Option<u32>| -> Result<Option<String>> {
        match id {
            None => Ok(None),
            Some(id) => g.tokens.get(id as usize).cloned().map(Some).ok_or_else(|| {
                TokenizerError::InvalidGguf {
                    reason: format!("{key} {id} is outside the {} tokens", g.tokens.len()),
                }
            }),
        }
    };
    let mut named = Vec::new();
    for (name, key, id) in [
        ("bos_token", "bos_token_id", g.bos_token_id),
        ("eos_token", "eos_token_id", g.eos_token_id),
        ("unk_token", "unknown_token_id", g.unknown_token_id),
        ("pad_token", "padding_token_id", g.padding_token_id),
    ] {
        if let Some(t) = token_of(key, id)? {
            named.push((name, t));
        }
    }
    Ok(GgufParts { inner, named })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[b'!' as usize], '!');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xAD], 'Ń');
        let distinct: HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }
}
