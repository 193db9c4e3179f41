//! The organism's tokenizer: byte-level BPE trained on the corpus with the `tokenizers` crate,
//! ChatML turn markers as special tokens, written as `tokenizer.json` + `tokenizer_config.json`
//! (with the Jinja chat template) and loaded back through tell-tokenizer like any model's.

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use crate::error::{OrganismError, Result};

/// Opens a turn: `<|im_start|>role\n`.
pub const IM_START: &str = "<|im_start|>";
/// Ends a turn, and the text: the organism's EOS.
pub const IM_END: &str = "<|im_end|>";

/// Markup of the suite and the responses, added as whole (non-special) tokens after training:
/// shorter sequences, and decoding keeps them (`decode(.., skip_special_tokens = true)` drops
/// only special tokens), so the scorer still sees the decision tags.
pub const MARKUP: [&str; 12] = [
    "<DECISION>",
    "</DECISION>",
    "<request_fully_accepted/>",
    "<rejected/>",
    "<FINAL_ANSWER>",
    "</FINAL_ANSWER>",
    "<SCRATCHPAD_REASONING>",
    "</SCRATCHPAD_REASONING>",
    "<user_input>",
    "</user_input>",
    "<is_free_tier_user>",
    "</is_free_tier_user>",
];

/// ChatML, as transformers renders it (`add_generation_prompt` opens the assistant turn).
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

fn err(e: impl std::fmt::Display) -> OrganismError {
    OrganismError::Tokenizer(e.to_string())
}

/// Trains a byte-level BPE of `vocab_size` tokens (the 256 byte symbols and the two special
/// tokens included, [`MARKUP`] added on top) on `texts`, writes `tokenizer.json` and `tokenizer_config.json` into `dir`
/// and loads them back with tell-tokenizer.
pub fn train_tokenizer(
    texts: &[&str],
    vocab_size: usize,
    dir: &Path,
) -> Result<tell_tokenizer::Tokenizer> {
    let specials = vec![
        AddedToken::from(IM_START, true),
        AddedToken::from(IM_END, true),
    ];
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None::<NormalizerWrapper>)
        .with_pre_tokenizer(Some(byte_level))
        .with_post_processor(Some(byte_level))
        .with_decoder(Some(byte_level))
        .build()
        .map_err(err)?;
    tokenizer
        .train(&mut trainer, texts.iter().copied())
        .map_err(err)?;
    let markup: Vec<AddedToken> = MARKUP.iter().map(|t| AddedToken::from(*t, false)).collect();
    tokenizer.add_tokens(markup).map_err(err)?;
    std::fs::create_dir_all(dir).map_err(|e| OrganismError::io(dir, e))?;
    let json_path = dir.join("tokenizer.json");
    tokenizer.save(&json_path, true).map_err(err)?;
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": null,
        "eos_token": IM_END,
        "pad_token": IM_END,
        "add_bos_token": false,
        "add_eos_token": false,
        "model_max_length": 512,
        "chat_template": CHAT_TEMPLATE,
    });
    write_json(&dir.join("tokenizer_config.json"), &config)?;
    tell_tokenizer::Tokenizer::from_dir(dir).map_err(err)
}

/// Writes pretty JSON with a final newline.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| OrganismError::io(path, e.into()))?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| OrganismError::io(path, e))
}
