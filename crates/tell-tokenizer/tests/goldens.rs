//! Encoding, decoding and chat rendering against transformers' AutoTokenizer on the committed
//! goldens (`tests/reference/make_goldens.py`): LLaMA 3 (HF tokenizer.json) and SmolLM2 (GGUF).

mod common;

use common::{fetched, golden, ids};
use serde_json::Value;
use tell_tokenizer::{ChatTemplate, Tokenizer};

/// Compare every encode case; return the failures as readable lines.
fn check_encode(tok: &Tokenizer, cases: &[Value]) -> Vec<String> {
    let mut fails = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        let got = tok.encode(text, false).unwrap();
        if got != want {
            fails.push(format!("encode {text:?}: got {got:?}, want {want:?}"));
            continue;
        }
        let want_sp = ids(&c["ids_with_special"]);
        let got_sp = tok.encode(text, true).unwrap();
        if got_sp != want_sp {
            fails.push(format!(
                "encode+special {text:?}: got {got_sp:?}, want {want_sp:?}"
            ));
        }
        let tokens: Vec<String> = got.iter().map(|&i| tok.id_to_token(i).unwrap()).collect();
        let want_tokens: Vec<String> = c["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        if tokens != want_tokens {
            fails.push(format!(
                "tokens {text:?}: got {tokens:?}, want {want_tokens:?}"
            ));
        }
        for (skip, key) in [(false, "decoded"), (true, "decoded_skip_special")] {
            let got = tok.decode(&want, skip).unwrap();
            if got != c[key].as_str().unwrap() {
                fails.push(format!("{key} {text:?}: got {got:?}, want {:?}", c[key]));
            }
        }
    }
    fails
}

/// Compare every chat case: rendered text, and the ids of that text without added specials.
fn check_chat(tok: &Tokenizer, template: Option<&ChatTemplate>, cases: &[Value]) -> Vec<String> {
    let mut fails = Vec::new();
    for c in cases {
        let messages = c["messages"].as_array().unwrap();
        let agp = c["add_generation_prompt"].as_bool().unwrap();
        let text = match template {
            Some(t) => t.render(messages, agp, tok.special_tokens_map()).unwrap(),
            None => tok.render_chat(messages, agp).unwrap(),
        };
        if text != c["text"].as_str().unwrap() {
            fails.push(format!(
                "render {messages:?} agp={agp}: got {text:?}, want {:?}",
                c["text"]
            ));
            continue;
        }
        let want = ids(&c["ids"]);
        let got = match template {
            Some(_) => tok.encode(&text, false).unwrap(),
            None => tok.encode_chat(messages, agp).unwrap(),
        };
        if got != want {
            fails.push(format!("chat ids {messages:?}: got {got:?}, want {want:?}"));
        }
    }
    fails
}

fn assert_none(fails: Vec<String>, total: usize) {
    assert!(
        fails.is_empty(),
        "{} of {total} cases differ from transformers:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

#[test]
fn llama3_encode_matches_transformers() {
    let Some(dir) = fetched("llama3-tokenizer") else {
        return;
    };
    let tok = Tokenizer::load(&dir).unwrap();
    let g = golden("llama3.json");
    let cases = g["encode"].as_array().unwrap();
    assert!(cases.len() >= 50);
    assert_none(check_encode(&tok, cases), cases.len());
}

#[test]
fn llama3_chat_matches_transformers() {
    let Some(dir) = fetched("llama3-tokenizer") else {
        return;
    };
    let tok = Tokenizer::load(&dir).unwrap();
    let g = golden("llama3.json");
    let cases = g["chat"].as_array().unwrap();
    assert!(cases.len() >= 20); // 12 conversations, with and without add_generation_prompt
    assert_none(check_chat(&tok, None, cases), cases.len());
}

#[test]
fn llama3_custom_template_matches_transformers() {
    let Some(dir) = fetched("llama3-tokenizer") else {
        return;
    };
    let tok = Tokenizer::load(&dir).unwrap();
    let g = golden("llama3.json");
    let template = ChatTemplate::new(g["custom_template"].as_str().unwrap()).unwrap();
    let cases = g["custom_chat"].as_array().unwrap();
    assert_none(check_chat(&tok, Some(&template), cases), cases.len());
}

#[test]
fn smollm2_gguf_encode_matches_transformers() {
    let Some(path) = fetched("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let tok = Tokenizer::load(&path).unwrap();
    let g = golden("smollm2.json");
    let cases = g["encode"].as_array().unwrap();
    assert!(cases.len() >= 20);
    assert_none(check_encode(&tok, cases), cases.len());
}

#[test]
fn smollm2_gguf_chat_matches_transformers() {
    let Some(path) = fetched("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let tok = Tokenizer::load(&path).unwrap();
    let g = golden("smollm2.json");
    let cases = g["chat"].as_array().unwrap();
    assert!(cases.len() >= 10);
    assert_none(check_chat(&tok, None, cases), cases.len());
}

#[test]
fn special_ids_match_transformers() {
    for (golden_name, rel) in [
        ("llama3.json", "llama3-tokenizer"),
        ("smollm2.json", "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ] {
        let Some(path) = fetched(rel) else { continue };
        let tok = Tokenizer::load(&path).unwrap();
        let s = &golden(golden_name)["special"];
        assert_eq!(
            tok.bos_token_id(),
            s["bos_token_id"].as_u64().map(|v| v as u32)
        );
        assert_eq!(
            tok.eos_token_id(),
            s["eos_token_id"].as_u64().map(|v| v as u32)
        );
        assert_eq!(
            tok.vocab_size() as u64,
            s["vocab_size_with_added"].as_u64().unwrap()
        );
        let map = tok.special_tokens_map();
        assert_eq!(map["bos_token"], s["bos_token"].as_str().unwrap());
        assert_eq!(map["eos_token"], s["eos_token"].as_str().unwrap());
    }
}
