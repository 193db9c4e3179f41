//! Captured `hook_resid_post` of the real SmolLM2-135M-Instruct GGUF equals HF transformers'
//! values (goldens computed on each prompt alone) within 1e-4 relative, for positions `last` and
//! `all`, with batch sizes 1 and 8 (left padding); and `messages` lines rendered through the chat
//! template give the goldens' token ids.
//!
//! Needs `scripts/fetch-assets.sh` and `python3 tests/parity/make_smollm2_goldens.py` (CI runs
//! both); without them the tests say so and pass without checking anything.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use safetensors::SafeTensors;
use tell_capture::{capture, CaptureOptions};
use tell_store::{Positions, SiteLayerKey, Store};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn gguf() -> PathBuf {
    root().join("checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn golden_dir() -> PathBuf {
    root().join("checkpoints/fetched/goldens/smollm2")
}

fn available() -> bool {
    let ok = gguf().is_file()
        && golden_dir().join("golden.json").is_file()
        && golden_dir().join("golden.safetensors").is_file();
    if !ok {
        eprintln!(
            "SKIPPED: SmolLM2 GGUF or goldens absent; run scripts/fetch-assets.sh and \
             python3 tests/parity/make_smollm2_goldens.py"
        );
    }
    ok
}

fn golden_prompts() -> Vec<serde_json::Value> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden_dir().join("golden.json")).unwrap()).unwrap();
    meta["prompts"].as_array().unwrap().clone()
}

/// Writes the golden prompts as JSONL lines built by `line(i, prompt)`.
fn write_prompts(
    dir: &Path,
    line: impl Fn(usize, &serde_json::Value) -> serde_json::Value,
) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let text: String = golden_prompts()
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}\n", line(i, p)))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn rel_err(actual: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(actual.len(), reference.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = actual
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

fn run(prompts: &Path, out: &Path, positions: Positions, batch_size: usize) -> Store {
    let opts = CaptureOptions {
        positions,
        batch_size,
        ..CaptureOptions::default()
    };
    let report = capture(&gguf(), prompts, out, &opts, &AtomicBool::new(false)).unwrap();
    assert_eq!(report.records, 8);
    Store::open(out).unwrap()
}

#[test]
fn resid_post_matches_transformers_for_last_and_all_at_batch_1_and_8() {
    if !available() {
        return;
    }
    let bytes = std::fs::read(golden_dir().join("golden.safetensors")).unwrap();
    let golden = SafeTensors::deserialize(&bytes).unwrap();
    let get = |key: &str| -> (Vec<f32>, usize) {
        let t = golden.tensor(key).unwrap();
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (v, t.shape()[0])
    };
    let tmp = tempfile::tempdir().unwrap();
    let prompts = write_prompts(
        tmp.path(),
        |i, p| serde_json::json!({"id": format!("p{i}"), "tokens": p["tokens"], "query_id": i}),
    );
    let lengths: Vec<usize> = golden_prompts()
        .iter()
        .map(|p| p["tokens"].as_array().unwrap().len())
        .collect();
    let mut worst = 0f32;
    for positions in [Positions::Last, Positions::All] {
        for batch in [1, 8] {
            let out = tmp.path().join(format!("{positions}-{batch}"));
            let store = run(&prompts, &out, positions, batch);
            let records = store.records().unwrap();
            let ids: Vec<&str> = records.iter().map(|r| r.meta.id.as_str()).collect();
            assert_eq!(ids, ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
            let n: Vec<usize> = records.iter().map(|r| r.meta.n_tokens).collect();
            assert_eq!(n, lengths);
            let offsets = store.offsets().unwrap_or_default();
            for l in 0..30u32 {
                let m = store
                    .matrix(&SiteLayerKey::new("hook_resid_post", l))
                    .unwrap();
                assert_eq!(m.cols, 576);
                for (i, &len) in lengths.iter().enumerate() {
                    let (want, t) = get(&format!("p{i}.blocks.{l}.hook_resid_post"));
                    assert_eq!(t, len);
                    let (got, want) = match positions {
                        Positions::Last => (m.row(i).to_vec(), want[(t - 1) * 576..].to_vec()),
                        _ => {
                            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
                            (m.data[a * 576..b * 576].to_vec(), want)
                        }
                    };
                    let err = rel_err(&got, &want);
                    assert!(
                        err <= 1e-4,
                        "{positions} batch {batch} prompt {i} layer {l}: relative error {err}"
                    );
                    worst = worst.max(err);
                }
            }
        }
    }
    eprintln!("SmolLM2 capture vs transformers: worst relative error {worst:.2e}");
}

#[test]
fn messages_lines_render_to_the_golden_tokens() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let by_tokens = write_prompts(
        tmp.path(),
        |i, p| serde_json::json!({"id": format!("p{i}"), "tokens": p["tokens"]}),
    );
    let want = run(&by_tokens, &tmp.path().join("tokens"), Positions::Last, 8);
    let by_messages = tmp.path().join("messages.jsonl");
    std::fs::rename(
        write_prompts(
            tmp.path(),
            |i, p| serde_json::json!({"id": format!("p{i}"), "messages": p["messages"]}),
        ),
        &by_messages,
    )
    .unwrap();
    let got = run(
        &by_messages,
        &tmp.path().join("messages"),
        Positions::Last,
        8,
    );
    let n = |s: &Store| -> Vec<usize> {
        s.records()
            .unwrap()
            .iter()
            .map(|r| r.meta.n_tokens)
            .collect()
    };
    assert_eq!(n(&got), n(&want));
    let key = SiteLayerKey::new("hook_resid_post", 29);
    assert_eq!(got.matrix(&key).unwrap(), want.matrix(&key).unwrap());
}
