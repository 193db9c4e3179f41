//! `tell tokenize` end to end on the fetched LLaMA 3 tokenizer and SmolLM2 GGUF (skipped with a
//! message when `scripts/fetch-assets.sh` has not been run), and its errors on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run tell")
}

fn fetched(rel: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("checkpoints/fetched")
        .join(rel);
    if path.exists() {
        Some(path.display().to_string())
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run scripts/fetch-assets.sh",
            path.display()
        );
        None
    }
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn tokenize_llama3_text_and_chat() {
    let Some(dir) = fetched("llama3-tokenizer") else {
        return;
    };
    let v = json(&tell(&[
        "tokenize",
        &dir,
        "--text",
        "This is a test sentence.",
        "--json",
    ]));
    assert_eq!(
        v["ids"],
        serde_json::json!([2028, 374, 264, 1296, 11914, 13])
    );
    assert_eq!(v["tokens"][1]["token"], "Ġis");
    assert_eq!(v["tokens"][1]["text"], " is");

    let v = json(&tell(&[
        "tokenize",
        &dir,
        "--text",
        "Hi",
        "--chat",
        "--system",
        "Be brief.",
        "--json",
    ]));
    let ids: Vec<u64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    // BOS, then the system header 128006 9125 128007 271.
    assert_eq!(ids[..5], [128000, 128006, 9125, 128007, 271]);
    assert_eq!(ids[ids.len() - 4..], [128006, 78191, 128007, 271]);
    assert_eq!(v["tokens"][0]["special"], true);
    assert_eq!(v["stop_token_ids"], serde_json::json!([128001, 128009]));
    assert!(v["text"]
        .as_str()
        .unwrap()
        .starts_with("<|begin_of_text|><|start_header_id|>system"));

    let out = tell(&["tokenize", &dir, "--text", "Hi"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("1 tokens") && table.contains("13347"),
        "{table}"
    );
}

#[test]
fn tokenize_smollm2_gguf_chat() {
    let Some(gguf) = fetched("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let v = json(&tell(&[
        "tokenize",
        &gguf,
        "--text",
        "What is the capital of France?",
        "--chat",
        "--json",
    ]));
    let ids: Vec<u64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    // <|im_start|>system\n ... <|im_start|>assistant\n
    assert_eq!(ids[..3], [1, 9690, 198]);
    assert_eq!(ids[ids.len() - 4..], [1, 520, 9531, 198]);
    assert_eq!(v["stop_token_ids"], serde_json::json!([0, 2]));
}

#[test]
fn tokenize_bad_input_fails_cleanly() {
    let out = tell(&["tokenize", "/nonexistent/model", "--text", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no tokenizer at") && !err.contains("panicked"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), "{ not json").unwrap();
    let out = tell(&["tokenize", dir.path().to_str().unwrap(), "--text", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid tokenizer file") && !err.contains("panicked"),
        "{err}"
    );
}
