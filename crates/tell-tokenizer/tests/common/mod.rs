//! Shared helpers: where the fetched assets and the committed goldens live.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// `checkpoints/fetched/<rel>` at the workspace root, or `None` (with a message saying how to get
/// it) when `scripts/fetch-assets.sh` has not been run.
pub fn fetched(rel: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../checkpoints/fetched")
        .join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run scripts/fetch-assets.sh (CI does) to run this test",
            path.display()
        );
        None
    }
}

/// A committed golden file from `tests/reference/`.
pub fn golden(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("golden file is committed");
    serde_json::from_str(&text).expect("golden file is valid JSON")
}

/// The ids of a golden entry.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}
