//! The real SmolLM2-135M-Instruct GGUF against HF transformers loading the same file.
//!
//! Needs `scripts/fetch-assets.sh`, `python3 tests/parity/make_smollm2_goldens.py` and (for long
//! prompts) `python3 tests/parity/make_smollm2_long_goldens.py` (CI runs them first); without them
//! the tests say so and pass without checking anything.

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use safetensors::SafeTensors;
use tell_llama::{Batch, CpuBackend, Llama, Logits, ModelInfo, Site};

type B = CpuBackend;

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
    let ok = gguf().is_file() && golden_dir().join("golden.json").is_file();
    if !ok {
        eprintln!(
            "SKIPPED: SmolLM2 GGUF or goldens absent; run scripts/fetch-assets.sh and \
             python3 tests/parity/make_smollm2_goldens.py"
        );
    }
    ok
}

fn prompts() -> Vec<serde_json::Value> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden_dir().join("golden.json")).unwrap()).unwrap();
    meta["prompts"].as_array().unwrap().clone()
}

fn tokens(p: &serde_json::Value, key: &str) -> Vec<u32> {
    p[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

fn values(t: &Tensor<B, 3>) -> Vec<f32> {
    t.to_data().to_vec::<f32>().unwrap()
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

#[test]
fn inspect_reads_the_gguf() {
    if !gguf().is_file() {
        eprintln!("SKIPPED: run scripts/fetch-assets.sh");
        return;
    }
    let info = ModelInfo::of(&gguf()).unwrap();
    assert_eq!(
        (info.layers, info.hidden_size, info.heads, info.kv_heads),
        (30, 576, 9, 3)
    );
    assert_eq!((info.intermediate_size, info.vocab_size), (1536, 49152));
    assert!(info.tied_embeddings && info.tokenizer && info.chat_template);
    assert_eq!(info.parameters, 134_515_008);
    assert_eq!(
        info.dtypes["Q4_1"] + info.dtypes["Q8_0"] + info.dtypes["F32"],
        info.stored_parameters
    );
}

#[test]
fn logits_and_every_resid_post_match_transformers() {
    if !available() {
        return;
    }
    let bytes = std::fs::read(golden_dir().join("golden.safetensors")).unwrap();
    let golden = SafeTensors::deserialize(&bytes).unwrap();
    let get = |key: &str| -> Vec<f32> {
        golden
            .tensor(key)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let device = Default::default();
    let model = Llama::<B>::load(&gguf(), &device).unwrap();
    let layers = model.config().num_layers;
    let mut sites: Vec<Site> = (0..layers).map(Site::resid_post).collect();
    sites.push(Site::LnFinal);
    let mut worst = 0f32;
    for (i, p) in prompts().iter().enumerate() {
        let ids = tokens(p, "tokens");
        let batch = Batch::left_padded(&[ids], 0).unwrap();
        let out = model.forward(&batch, &sites, Logits::All).unwrap();
        let err = rel_err(&values(&out.logits.unwrap()), &get(&format!("p{i}.logits")));
        assert!(err <= 1e-4, "prompt {i} logits: {err}");
        worst = worst.max(err);
        for site in &sites {
            let err = rel_err(
                &values(out.captures.get(site).unwrap()),
                &get(&format!("p{i}.{site}")),
            );
            assert!(err <= 1e-4, "prompt {i} {site}: {err}");
            worst = worst.max(err);
        }
    }
    eprintln!("SmolLM2 worst relative error {worst:.2e}");
}

fn greedy_opts() -> tell_llama::GenerateOptions {
    tell_llama::GenerateOptions {
        max_new_tokens: 32,
        stop_tokens: vec![2],
        pad_token: 2,
        ..Default::default()
    }
}

#[test]
fn greedy_generation_is_token_identical_to_transformers() {
    if !available() {
        return;
    }
    let device = Default::default();
    let model = Llama::<B>::load(&gguf(), &device).unwrap();
    let with_greedy: Vec<_> = prompts()
        .into_iter()
        .filter(|p| p.get("greedy").is_some())
        .collect();
    assert_eq!(with_greedy.len(), 5);
    let inputs: Vec<Vec<u32>> = with_greedy.iter().map(|p| tokens(p, "tokens")).collect();
    // One prompt at a time, as transformers ran them ...
    for (p, ids) in with_greedy.iter().zip(&inputs) {
        let out =
            tell_llama::generate(&model, std::slice::from_ref(ids), &greedy_opts(), |_, _| {
                false
            })
            .unwrap();
        assert_eq!(out[0].tokens, tokens(p, "greedy"), "{}", p["greedy_text"]);
    }
    // ... and all five as one left-padded batch, each stopping on its own.
    let out = tell_llama::generate(&model, &inputs, &greedy_opts(), |_, _| false).unwrap();
    for (p, g) in with_greedy.iter().zip(&out) {
        assert_eq!(
            g.tokens,
            tokens(p, "greedy"),
            "batched: {}",
            p["greedy_text"]
        );
    }
    // ... and two at a time, each finished slot refilled by the next prompt.
    let mut queued = vec![None; inputs.len()];
    tell_llama::generate_queued(
        &model,
        &inputs,
        2,
        &greedy_opts(),
        |_, _| false,
        |i, g| {
            queued[i] = Some(g);
            std::ops::ControlFlow::Continue(())
        },
    )
    .unwrap();
    for (p, g) in with_greedy.iter().zip(&queued) {
        let g = g.as_ref().expect("every prompt finishes");
        assert_eq!(
            g.tokens,
            tokens(p, "greedy"),
            "queued: {}",
            p["greedy_text"]
        );
    }
    // "What is the capital of France?" -> "The capital of France is Paris."
    assert_eq!(
        with_greedy[0]["greedy_text"],
        "The capital of France is Paris."
    );
    assert_eq!(out[0].finish, tell_llama::Finish::StopToken);
}

/// Long prompts (tests/parity/make_smollm2_long_goldens.py): several blocks of query rows and of
/// keys in attention, several runs of rows in the prefill products, and a batch whose shorter row
/// is left-padded by 170 positions.
#[test]
fn long_prompts_alone_and_left_padded_match_transformers() {
    let dir = root().join("checkpoints/fetched/goldens/smollm2-long");
    if !gguf().is_file() || !dir.join("golden.json").is_file() {
        eprintln!(
            "SKIPPED: run scripts/fetch-assets.sh and python3 tests/parity/make_smollm2_long_goldens.py"
        );
        return;
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
    let golden = SafeTensors::deserialize(&bytes).unwrap();
    let get = |key: &str| -> Vec<f32> {
        golden
            .tensor(key)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let as_ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect()
    };
    let prompts: Vec<Vec<u32>> = meta["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_ids)
        .collect();
    let model = Llama::<B>::load(&gguf(), &Default::default()).unwrap();
    let (layers, vocab, d) = (30, 49152, 576);
    let sites: Vec<Site> = (0..layers).map(Site::resid_post).collect();
    let mut worst = 0f32;
    for (i, prompt) in prompts.iter().enumerate() {
        let at: Vec<usize> = as_ids(&meta["positions"][i])
            .iter()
            .map(|&p| p as usize)
            .collect();
        let batch = Batch::left_padded(std::slice::from_ref(prompt), 0).unwrap();
        let out = model.forward(&batch, &sites, Logits::Last).unwrap();
        let logits = values(&out.logits.unwrap());
        let want = get(&format!("p{i}.logits"));
        let err = rel_err(&logits, &want[2 * vocab..]);
        assert!(
            err <= 1e-4,
            "prompt {i} ({} tokens) last logits: {err}",
            prompt.len()
        );
        worst = worst.max(err);
        for site in &sites {
            let all = values(out.captures.get(site).unwrap());
            let rows: Vec<f32> = at
                .iter()
                .flat_map(|&p| all[p * d..(p + 1) * d].to_vec())
                .collect();
            let err = rel_err(&rows, &get(&format!("p{i}.{site}")));
            assert!(err <= 1e-4, "prompt {i} {site} at {at:?}: {err}");
            worst = worst.max(err);
        }
    }
    let batch = Batch::left_padded(&prompts, 0).unwrap();
    let logits = values(
        &model
            .forward(&batch, &[], Logits::Last)
            .unwrap()
            .logits
            .unwrap(),
    );
    let want = get("batch.logits");
    for row in 0..prompts.len() {
        let err = rel_err(
            &logits[row * vocab..(row + 1) * vocab],
            &want[row * vocab..(row + 1) * vocab],
        );
        assert!(err <= 1e-4, "batch row {row}: {err}");
        worst = worst.max(err);
    }
    eprintln!("SmolLM2 long prompts: worst relative error {worst:.2e}");
}
