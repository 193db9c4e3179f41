//! The config.json files transformers itself writes (4.40 to 5.x, `tests/reference/configs/`,
//! made by `tests/reference/make_config_goldens.py`) are accepted and read as the architecture
//! they describe; fields that would change the computation are still refused, naming the field.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tell_llama::{LlamaConfig, RopeScaling};

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/configs")
}

/// Every golden file as (transformers version, config name, path), sorted.
fn goldens() -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(reference()).unwrap() {
        let dir = dir.unwrap().path();
        let version = dir.file_name().unwrap().to_str().unwrap().to_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            let config = name.split('.').next().unwrap().to_owned();
            out.push((version.clone(), config, path));
        }
    }
    out.sort();
    out
}

/// What each golden config describes (the same whichever version wrote it).
fn expected(name: &str) -> LlamaConfig {
    let smollm2 = LlamaConfig {
        vocab_size: 49152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_layers: 30,
        num_heads: 9,
        num_kv_heads: 3,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 100000.0,
        rope_scaling: RopeScaling::None,
        tie_word_embeddings: true,
        max_position_embeddings: 8192,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
    };
    match name {
        "default" => LlamaConfig {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_layers: 32,
            num_heads: 32,
            num_kv_heads: 32,
            head_dim: 128,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::None,
            tie_word_embeddings: false,
            max_position_embeddings: 2048,
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
        },
        "llama31" => LlamaConfig {
            vocab_size: 128256,
            hidden_size: 4096,
            intermediate_size: 14336,
            num_layers: 32,
            num_heads: 32,
            num_kv_heads: 8,
            head_dim: 128,
            rms_norm_eps: 1e-5,
            rope_theta: 500000.0,
            rope_scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
            tie_word_embeddings: false,
            max_position_embeddings: 131072,
            bos_token_id: Some(128000),
            eos_token_ids: vec![128001, 128008, 128009],
        },
        "smollm2" => smollm2,
        // The GGUF stores the epsilon as f32; transformers writes it widened.
        "smollm2-gguf" => LlamaConfig {
            rms_norm_eps: 9.999999747378752e-06,
            ..smollm2
        },
        other => panic!("no expectation for golden config {other}"),
    }
}

#[test]
fn every_config_transformers_writes_is_accepted() {
    let all = goldens();
    let listing: Vec<String> = all
        .iter()
        .map(|(v, _, p)| format!("{v}/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    // transformers 4.40.2 knows neither llama3 rope scaling nor GGUF files.
    let mut want = vec![
        "transformers-4.40.2/default.full.json".to_owned(),
        "transformers-4.40.2/default.saved.json".to_owned(),
        "transformers-4.40.2/smollm2.full.json".to_owned(),
        "transformers-4.40.2/smollm2.saved.json".to_owned(),
    ];
    for v in ["4.57.6", "5.0.0", "5.25.0"] {
        for c in ["default", "llama31", "smollm2", "smollm2-gguf"] {
            for kind in ["full", "saved"] {
                want.push(format!("transformers-{v}/{c}.{kind}.json"));
            }
        }
    }
    assert_eq!(listing, want);
    for (_, name, path) in &all {
        match LlamaConfig::from_file(path) {
            Ok(cfg) => assert_eq!(cfg, expected(name), "{}", path.display()),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The case: transformers 5 writes `unk_token_id` for a SmolLM2 read from its GGUF.
#[test]
fn smollm2_saved_from_its_gguf_by_transformers_5_is_accepted() {
    let path = reference().join("transformers-5.25.0/smollm2-gguf.saved.json");
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(raw["unk_token_id"], json!(0));
    let cfg = LlamaConfig::from_file(&path).unwrap();
    assert_eq!(cfg, expected("smollm2-gguf"));
}

/// SmolLM2's config as transformers 5.25 saves it, with `edit` applied.
fn smollm2_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let path = reference().join("transformers-5.25.0/smollm2.saved.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(cfg.as_object_mut().unwrap());
    serde_json::to_string(&cfg).unwrap()
}

fn parse(text: &str) -> Result<LlamaConfig, String> {
    LlamaConfig::from_json_str(text, Path::new("m/config.json")).map_err(|e| e.to_string())
}

#[test]
fn fields_that_change_the_computation_are_refused() {
    for (key, value, message) in [
        (
            "attention_bias",
            json!(true),
            "attention_bias = true (biased q/k/v/o projections) is not supported",
        ),
        (
            "mlp_bias",
            json!(true),
            "mlp_bias = true (biased MLP projections) is not supported",
        ),
        ("hidden_act", json!("gelu"), "hidden_act `gelu`; LLaMA uses `silu`"),
        (
            "foo_scaling",
            json!(2.0),
            "unknown field `foo_scaling`: it may change the architecture, and tell does not know it",
        ),
        (
            "sliding_window",
            json!(4096),
            "unknown field `sliding_window`: it may change the architecture, and tell does not know it",
        ),
        (
            "rope_interleaved",
            json!(true),
            "rope_interleaved = true (interleaved rotary pairs) is not supported; tell, like \
             transformers' LlamaForCausalLM, rotates halves",
        ),
        (
            "pruned_heads",
            json!({"3": [0, 5]}),
            "pruned_heads = {\"3\":[0,5]} (attention heads removed from some layers) is not \
             supported",
        ),
        (
            "rope_parameters",
            json!({"rope_type": "yarn", "rope_theta": 100000.0, "factor": 4.0}),
            "rope scaling type `yarn`; supported: default, llama3",
        ),
        ("model_type", json!("mistral"), "model_type `mistral`; only `llama` is supported"),
    ] {
        let text = smollm2_with(|c| {
            c.insert(key.into(), value);
        });
        assert_eq!(
            parse(&text).unwrap_err(),
            format!("m/config.json: unsupported config: {message}"),
            "{key}"
        );
    }
}

#[test]
fn harmless_fields_and_values_are_accepted() {
    for (key, value) in [
        // Token ids the forward pass never reads.
        ("unk_token_id", json!(0)),
        ("cls_token_id", json!(3)),
        ("mask_token_id", json!(4)),
        ("sep_token_id", json!(5)),
        ("decoder_start_token_id", json!(0)),
        // The same linear maps, computed in slices by transformers 4.40 and whole by 4.57 and 5.x.
        ("pretraining_tp", json!(2)),
        ("rope_interleaved", json!(false)),
        ("pruned_heads", json!({})),
        ("pruned_heads", json!({"0": []})),
        ("is_llama_config", json!(true)),
        (
            "transformers.js_config",
            json!({"kv_cache_dtype": {"q4f16": "float16", "fp16": "float16"}}),
        ),
        ("_attn_implementation", json!("sdpa")),
        ("output_hidden_states", json!(true)),
        ("temperature", json!(0.7)),
        ("attention_dropout", json!(0.1)),
    ] {
        let text = smollm2_with(|c| {
            c.insert(key.into(), value);
        });
        assert_eq!(parse(&text), Ok(expected("smollm2")), "{key}");
    }
}
