//! Every capture site and position mode that `tell capture --help` and the README offer, through
//! the binary and `tell store export --format npy`, against the transformers goldens of
//! `tests/parity/models/` (written by `tests/parity/make_goldens.py`), at batch sizes 1 and 8.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;

/// The parity tolerance of `crates/tell-llama/tests/parity.rs`: max |a - b| / max |b|.
const TOL: f32 = 1e-4;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir(name: &str) -> PathBuf {
    repo().join("tests/parity/models").join(name)
}

fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run tell")
}

fn ok(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tell failed: {err}");
}

/// A golden file: the prompts and transformers' values per prompt (`p{i}.{site}`, `[t, width]`).
struct Golden {
    bytes: Vec<u8>,
    prompts: Vec<Vec<u32>>,
    layers: usize,
}

impl Golden {
    fn load(name: &str) -> Self {
        let dir = model_dir(name);
        let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
        let prompts = serde_json::from_value(meta["prompts"].clone()).unwrap();
        let layers = meta["layers"].as_u64().unwrap() as usize;
        Self {
            bytes,
            prompts,
            layers,
        }
    }

    /// `(t, width, values)` of one prompt at one site.
    fn get(&self, prompt: usize, site: &str) -> (usize, usize, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let key = format!("p{prompt}.{site}");
        let view = st
            .tensor(&key)
            .unwrap_or_else(|_| panic!("golden has no {key}"));
        let shape = view.shape();
        (shape[0], shape[1], f32s(view.data()))
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Reads a little-endian f32 `.npy` (as `tell store export` writes it): shape and values.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let shape = header.split('(').nth(1).unwrap().split(')').next().unwrap();
    let shape = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    (shape, f32s(&bytes[10 + header_len..]))
}

fn rel_err(actual: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(actual.len(), reference.len(), "lengths differ");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = actual
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// The f64 mean of rows `from..to` of a `[t, width]` block.
fn mean_rows(values: &[f32], width: usize, from: usize, to: usize) -> Vec<f32> {
    let mut acc = vec![0f64; width];
    for t in from..to {
        for (a, v) in acc.iter_mut().zip(&values[t * width..(t + 1) * width]) {
            *a += f64::from(*v);
        }
    }
    acc.iter()
        .map(|a| (a / (to - from) as f64) as f32)
        .collect()
}

/// What a position mode keeps of a prompt's `[t, width]` golden, given `response` trailing
/// tokens that the prompt line marks as its response.
fn expected(positions: &str, values: &[f32], t: usize, width: usize, response: usize) -> Vec<f32> {
    let prompt = t - response;
    match positions {
        "last" => values[(prompt - 1) * width..prompt * width].to_vec(),
        "all" => values.to_vec(),
        "mean" => mean_rows(values, width, 0, prompt),
        "response-mean" => mean_rows(values, width, prompt, t),
        "response-first" => values[prompt * width..(prompt + 1) * width].to_vec(),
        other => panic!("unknown positions {other}"),
    }
}

/// Writes the golden prompts as a prompt file; with `response > 0`, each prompt's last
/// `response` tokens become the line's `response` token ids.
fn write_prompts(path: &Path, golden: &Golden, response: usize) {
    let mut text = String::new();
    for (i, p) in golden.prompts.iter().enumerate() {
        let cut = p.len() - response;
        let line = if response == 0 {
            serde_json::json!({"id": format!("p{i}"), "tokens": p})
        } else {
            serde_json::json!({"id": format!("p{i}"), "tokens": &p[..cut], "response": &p[cut..]})
        };
        text.push_str(&format!("{line}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// Captures `sites` at every layer through the CLI, exports to npy, and checks every exported
/// site against the goldens; returns the worst relative error.
fn check(
    name: &str,
    sites: &[&str],
    positions: &str,
    batch: usize,
    response: usize,
    tmp: &Path,
) -> f32 {
    let golden = Golden::load(name);
    let tag = format!("{name}-{}-{positions}-{batch}", sites.join("+"));
    let prompts = tmp.join(format!("{tag}.jsonl"));
    write_prompts(&prompts, &golden, response);
    let store = tmp.join(format!("{tag}.store"));
    let npy = tmp.join(format!("{tag}.npy"));
    let model = model_dir(name);
    let batch_s = batch.to_string();
    let sites_s = sites.join(",");
    ok(&tell(&[
        "capture",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        store.to_str().unwrap(),
        "--sites",
        &sites_s,
        "--layers",
        "all",
        "--positions",
        positions,
        "--batch-size",
        &batch_s,
    ]));
    ok(&tell(&[
        "store",
        "export",
        store.to_str().unwrap(),
        "--format",
        "npy",
        "--out",
        npy.to_str().unwrap(),
    ]));
    let mut worst = 0f32;
    for site in sites {
        let tensors: Vec<String> = match *site {
            "logits" | "ln_final" => vec![site.to_string()],
            hook => (0..golden.layers)
                .map(|l| format!("blocks.{l}.hook_{hook}"))
                .collect(),
        };
        for tensor in tensors {
            let (shape, got) = read_npy(&npy.join(format!("{tensor}.npy")));
            let mut want = Vec::new();
            for i in 0..golden.prompts.len() {
                let (t, width, values) = golden.get(i, &tensor);
                want.extend(expected(positions, &values, t, width, response));
            }
            let width = shape[1];
            assert_eq!(
                shape[0] * width,
                want.len(),
                "{tag} {tensor}: shape {shape:?}"
            );
            let err = rel_err(&got, &want);
            assert!(err <= TOL, "{tag} {tensor}: rel err {err}");
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn logits_through_the_cli_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut worst = 0f32;
    // Untied and tied heads, bf16 weights, an explicit head_dim.
    for name in ["llama3-rope", "tied", "bf16", "head-dim"] {
        for positions in ["last", "all", "mean"] {
            for batch in [1, 8] {
                worst = worst.max(check(name, &["logits"], positions, batch, 0, tmp.path()));
                worst = worst.max(check(
                    name,
                    &["resid_post", "logits"],
                    positions,
                    batch,
                    0,
                    tmp.path(),
                ));
            }
        }
    }
    eprintln!("logits through the CLI: worst relative error {worst:.2e}");
}

#[test]
fn every_site_and_position_through_the_cli_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let sites = [
        "resid_pre",
        "attn_out",
        "resid_mid",
        "mlp_out",
        "resid_post",
        "ln_final",
        "logits",
    ];
    let mut worst = 0f32;
    for (positions, response) in [
        ("last", 0),
        ("mean", 0),
        ("all", 0),
        ("response-mean", 2),
        ("response-first", 2),
    ] {
        for batch in [1, 8] {
            let err = check("gqa", &sites, positions, batch, response, tmp.path());
            worst = worst.max(err);
        }
    }
    eprintln!("every site through the CLI: worst relative error {worst:.2e}");
}

#[test]
fn the_lm_head_runs_only_for_the_kept_positions() {
    use std::sync::atomic::AtomicBool;
    use tell_capture::{capture, CaptureOptions};
    use tell_store::Positions;

    let tmp = tempfile::tempdir().unwrap();
    let golden = Golden::load("gqa");
    let prompts = tmp.path().join("p.jsonl");
    write_prompts(&prompts, &golden, 0);
    let tokens: usize = golden.prompts.iter().map(Vec::len).sum();
    let stop = AtomicBool::new(false);
    for (positions, rows) in [
        (Positions::Last, golden.prompts.len()),
        (Positions::Mean, golden.prompts.len()),
        (Positions::All, tokens),
    ] {
        let opts = CaptureOptions {
            sites: vec!["logits".into()],
            positions,
            ..Default::default()
        };
        let out = tmp.path().join(positions.as_str());
        let r = capture(&model_dir("gqa"), &prompts, &out, &opts, &stop).unwrap();
        assert_eq!(r.head_rows, rows as u64, "{positions:?}");
    }
}
