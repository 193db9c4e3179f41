//! The `tell` binary end to end: output on good input, a clear message and exit code 1 on bad.

use std::path::Path;
use std::process::{Command, Output};

fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run tell")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn inspect_reports_the_architecture_as_json() {
    let out = tell(&["inspect", "tests/parity/models/sharded", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["layers"], 3);
    assert_eq!(info["heads"], 8);
    assert_eq!(info["kv_heads"], 2);
    assert_eq!(info["parameters"], 98752);
    assert_eq!(info["stored_parameters"], 98752);
    assert_eq!(info["shards"].as_array().unwrap().len(), 9);
    assert_eq!(info["dtypes"]["F32"], 98752);
    assert_eq!(info["tokenizer"], false);
}

#[test]
fn inspect_counts_tied_and_bf16_checkpoints() {
    let out = tell(&["inspect", "tests/parity/models/bf16", "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["dtypes"]["BF16"], info["parameters"]);
    let out = tell(&["inspect", "tests/parity/models/tied", "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["tied_embeddings"], true);
    // 96 x 64 embedding counted once.
    assert_eq!(info["parameters"], info["stored_parameters"]);
    let text = tell(&["inspect", "tests/parity/models/llama3-rope"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("llama3 (factor 8, low 1, high 4, original 32)"),
        "{text}"
    );
}

#[test]
fn bad_model_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (file, body) in [
        ("config.json", "{ not json"),
        ("model.safetensors", "truncated"),
    ] {
        std::fs::write(dir.path().join(file), body).unwrap();
    }
    let path = dir.path().to_str().unwrap();
    let out = tell(&["inspect", path]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("malformed config"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::copy(
        Path::new("tests/parity/models/gqa/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let out = tell(&["forward", path, "--tokens", "1,2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("not a valid safetensors file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn forward_prints_the_top_tokens() {
    let out = tell(&[
        "forward",
        "tests/parity/models/gqa",
        "--tokens",
        "5,6,7",
        "--top",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["token"].as_u64().unwrap())
        .collect();
    assert_eq!(tokens, [26, 69, 70]);
}

/// A reader that stops early (`tell ... | head`) ends tell quietly, by SIGPIPE as for `cat`:
/// no panic, no "Broken pipe" error.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_tell_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let text = "word ".repeat(20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(["tokenize", "checkpoints/organism", "--text", &text])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tell");
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is closed here: the rest of the table has nowhere to go.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}
