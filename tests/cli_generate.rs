//! `tell generate` end to end on the real SmolLM2 GGUF (skipped with a message when the asset is
//! absent; CI fetches it first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gguf() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED: run scripts/fetch-assets.sh");
        None
    }
}

fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .output()
        .expect("run tell")
}

#[test]
fn answers_the_capital_of_france() {
    let Some(model) = gguf() else { return };
    let out = tell(&[
        "generate",
        model.to_str().unwrap(),
        "--prompt",
        "What is the capital of France?",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["response"], "The capital of France is Paris.");
    assert_eq!(v["finish_reason"], "stop_token");
    assert_eq!(v["response_tokens"].as_array().unwrap().last().unwrap(), 2);
}

#[test]
fn a_prompt_file_keeps_every_field_and_stops_on_strings() {
    let Some(model) = gguf() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(
        &prompts,
        concat!(
            r#"{"id": "q1", "messages": [{"role": "user", "content": "What is the capital of France?"}], "condition": "baseline-1", "tier": "free", "query_id": "7"}"#,
            "\n",
            r#"{"id": "q2", "text": "What is the capital of France?", "note": "kept"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out_path = dir.path().join("responses.jsonl");
    let out = tell(&[
        "generate",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        out_path.to_str().unwrap(),
        "--stop",
        " is",
        "--max-new-tokens",
        "16",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "q1");
    assert_eq!(lines[0]["condition"], "baseline-1");
    assert_eq!(lines[0]["tier"], "free");
    assert_eq!(lines[0]["query_id"], "7");
    // Cut before the stop string " is": "The capital of France".
    assert_eq!(lines[0]["response"], "The capital of France");
    assert_eq!(lines[0]["finish_reason"], "stop_check");
    assert_eq!(lines[1]["note"], "kept");
}

#[test]
fn a_malformed_prompt_line_is_named() {
    let Some(model) = gguf() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"a\", \"text\": \"hi\"}\n{\"id\": \"b\", \"text\": \n",
    )
    .unwrap();
    let out = tell(&[
        "generate",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        dir.path().join("r.jsonl").to_str().unwrap(),
        "--batch-size",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("prompts.jsonl:2: malformed JSON"), "{err}");
    // Every line is read and rendered before generation starts: the bad line fails the run in
    // seconds, before any output file is made.
    assert!(!dir.path().join("r.jsonl").exists());
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_id_used_twice_is_refused_before_the_model_loads() {
    // A parity checkpoint without tokenizer files: had the model or tokenizer been loaded first,
    // the run would fail on the missing tokenizer instead.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/models/llama3-rope");
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"a\", \"text\": \"hi\"}\n{\"id\": \"b\", \"text\": \"yo\"}\n\
         {\"id\": \"b\", \"text\": \"hey\"}\n",
    )
    .unwrap();
    let out = tell(&[
        "generate",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        dir.path().join("r.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "prompts.jsonl:3: id \"b\" is already the id of line 2; every prompt needs its own \
             id, since records, responses and labels are joined on it"
        ),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dir.path().join("r.jsonl").exists());
}
