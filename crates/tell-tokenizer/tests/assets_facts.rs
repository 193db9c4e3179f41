//! The facts of `reference/assets.md` about the real tokenizers, as exact-id tests.

mod common;

use common::fetched;
use tell_tokenizer::{Message, Tokenizer};

#[test]
fn llama3_facts() {
    let Some(dir) = fetched("llama3-tokenizer") else {
        return;
    };
    let tok = Tokenizer::load(&dir).unwrap();
    assert_eq!(
        tok.encode("This is a test sentence.", false).unwrap(),
        [2028, 374, 264, 1296, 11914, 13]
    );
    assert_eq!(tok.bos_token_id(), Some(128000));
    assert_eq!(tok.token_to_id("<|begin_of_text|>"), Some(128000));
    assert_eq!(tok.token_to_id("<|end_of_text|>"), Some(128001));
    assert_eq!(tok.token_to_id("<|start_header_id|>"), Some(128006));
    assert_eq!(tok.token_to_id("<|end_header_id|>"), Some(128007));
    assert_eq!(tok.token_to_id("<|eot_id|>"), Some(128009));
    assert_eq!(tok.end_of_turn_id(), Some(128009));
    assert_eq!(tok.stop_token_ids(), [128001, 128009]);

    // The template writes BOS itself; the user header is 128006 882 128007 271.
    let ids = tok.encode_chat(&[Message::user("Hi")], true).unwrap();
    assert_eq!(ids[..5], [128000, 128006, 882, 128007, 271]);
    assert_eq!(ids.iter().filter(|&&i| i == 128000).count(), 1);
    assert_eq!(ids[ids.len() - 4..], [128006, 78191, 128007, 271]);
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\n\nHiassistant\n\n");
}

#[test]
fn smollm2_facts() {
    let Some(path) = fetched("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let tok = Tokenizer::load(&path).unwrap();
    assert_eq!(tok.bos_token_id(), Some(1));
    assert_eq!(tok.eos_token_id(), Some(2));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.end_of_turn_id(), Some(2));
    assert_eq!(tok.stop_token_ids(), [0, 2]);
    let text = tok
        .render_chat(&[Message::user("What is the capital of France?")], true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
}
