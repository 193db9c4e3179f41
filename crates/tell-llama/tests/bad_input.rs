//! Every kind of bad checkpoint gives a clear error naming the file and tensor, never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tell_llama::{Batch, CpuBackend, Error, Llama, Logits, Site};

type B = CpuBackend;

fn parity(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/parity/models")
        .join(name)
}

/// A scratch copy of a parity checkpoint that a test may damage.
fn copy_of(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(parity(name)).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    tmp
}

fn load_err(dir: &Path) -> String {
    let device = Default::default();
    match Llama::<B>::load(dir, &device) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(cfg.as_object_mut().unwrap());
    fs::write(path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

#[test]
fn config_that_is_not_json() {
    let dir = copy_of("gqa");
    fs::write(dir.path().join("config.json"), "{\"hidden_size\": 64,").unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("config.json: malformed config"), "{err}");
}

#[test]
fn config_missing_a_required_field() {
    let dir = copy_of("gqa");
    edit_config(dir.path(), |c| {
        c.remove("num_hidden_layers");
    });
    let err = load_err(dir.path());
    assert!(err.contains("missing field `num_hidden_layers`"), "{err}");
}

#[test]
fn unsupported_rope_type() {
    let dir = copy_of("gqa");
    edit_config(dir.path(), |c| {
        c.insert(
            "rope_scaling".into(),
            json!({"rope_type": "yarn", "factor": 4.0}),
        );
    });
    let err = load_err(dir.path());
    assert!(
        err.contains("unsupported config: rope scaling type `yarn`"),
        "{err}"
    );
}

#[test]
fn attention_bias_is_refused() {
    let dir = copy_of("gqa");
    edit_config(dir.path(), |c| {
        c.insert("attention_bias".into(), json!(true));
    });
    let err = load_err(dir.path());
    assert!(err.contains("attention_bias = true"), "{err}");
}

#[test]
fn unknown_field_is_refused() {
    let dir = copy_of("llama3-rope-v5");
    edit_config(dir.path(), |c| {
        c.insert("sliding_window".into(), json!(4096));
    });
    let err = load_err(dir.path());
    assert!(err.contains("unknown field `sliding_window`"), "{err}");
}

#[test]
fn other_architecture_is_refused() {
    let dir = copy_of("gqa");
    edit_config(dir.path(), |c| {
        c.insert("model_type".into(), json!("mistral"));
    });
    let err = load_err(dir.path());
    assert!(err.contains("model_type `mistral`"), "{err}");
}

#[test]
fn heads_that_do_not_group() {
    let dir = copy_of("gqa");
    edit_config(dir.path(), |c| {
        c.insert("num_key_value_heads".into(), json!(3));
    });
    let err = load_err(dir.path());
    assert!(err.contains("multiple of num_key_value_heads (3)"), "{err}");
}

#[test]
fn truncated_safetensors_file() {
    let dir = copy_of("gqa");
    let path = dir.path().join("model.safetensors");
    let bytes = fs::read(&path).unwrap();
    for cut in [0, 5, 100, bytes.len() / 2, bytes.len() - 1] {
        fs::write(&path, &bytes[..cut]).unwrap();
        let err = load_err(dir.path());
        assert!(
            err.contains("model.safetensors: not a valid safetensors file"),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn corrupt_safetensors_header() {
    let dir = copy_of("gqa");
    let path = dir.path().join("model.safetensors");
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] = b'#'; // inside the JSON header
    fs::write(&path, &bytes).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

/// Rewrites `model.safetensors` with one tensor changed by `edit` (None removes it).
fn rewrite_tensor(dir: &Path, name: &str, edit: impl Fn(Vec<usize>) -> Option<Vec<usize>>) {
    use safetensors::tensor::{Dtype, TensorView};
    let path = dir.join("model.safetensors");
    let bytes = fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, view) in st.tensors() {
        let mut shape = view.shape().to_vec();
        let mut data = view.data().to_vec();
        if n == name {
            match edit(shape.clone()) {
                None => continue,
                Some(s) => {
                    let count: usize = s.iter().product();
                    data.resize(count * 4, 0);
                    shape = s;
                }
            }
        }
        owned.push((n, shape, data));
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_of("gqa");
    rewrite_tensor(dir.path(), "model.layers.1.mlp.up_proj.weight", |_| None);
    let err = load_err(dir.path());
    assert!(
        err.contains("tensor `model.layers.1.mlp.up_proj.weight` is missing from")
            && err.contains("model.safetensors"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_named() {
    let dir = copy_of("gqa");
    rewrite_tensor(dir.path(), "model.layers.2.self_attn.k_proj.weight", |_| {
        Some(vec![64, 64])
    });
    let err = load_err(dir.path());
    assert!(
        err.contains("tensor `model.layers.2.self_attn.k_proj.weight`")
            && err.contains("has shape [64, 64], the config implies [16, 64]"),
        "{err}"
    );
}

#[test]
fn integer_tensor_is_refused() {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = copy_of("gqa");
    let path = dir.path().join("model.safetensors");
    let bytes = fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let dtype = if n == "model.norm.weight" {
                Dtype::I32
            } else {
                v.dtype()
            };
            (
                n,
                TensorView::new(dtype, v.shape().to_vec(), v.data()).unwrap(),
            )
        })
        .collect();
    let out = dir.path().join("model.new");
    safetensors::serialize_to_file(views, None, &out).unwrap();
    fs::rename(out, &path).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("tensor `model.norm.weight`") && err.contains("stored as I32"),
        "{err}"
    );
}

#[test]
fn sharded_index_naming_a_missing_shard() {
    let dir = copy_of("sharded");
    fs::remove_file(dir.path().join("model-00004-of-00009.safetensors")).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("cannot read") && err.contains("model-00004-of-00009.safetensors"),
        "{err}"
    );
}

#[test]
fn sharded_index_that_lies() {
    let dir = copy_of("sharded");
    let path = dir.path().join("model.safetensors.index.json");
    let mut index: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    index["weight_map"]["model.layers.0.ghost.weight"] = json!("model-00001-of-00009.safetensors");
    fs::write(&path, index.to_string()).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("tensor `model.layers.0.ghost.weight` is missing")
            && err.contains("model-00001-of-00009.safetensors"),
        "{err}"
    );
    fs::write(&path, "{\"metadata\": {}}").unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("malformed weights index: no `weight_map`"),
        "{err}"
    );
}

#[test]
fn directory_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        parity("gqa").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("no model.safetensors"), "{err}");
}

#[test]
fn bad_forward_inputs() {
    let device = Default::default();
    let model = Llama::<B>::load(&parity("gqa"), &device).unwrap();
    let batch = Batch::left_padded(&[vec![1, 2, 500]], 0).unwrap();
    let err = model.forward(&batch, &[], Logits::All).unwrap_err();
    assert!(
        err.to_string()
            .contains("token id 500 is outside the vocabulary (size 96)"),
        "{err}"
    );
    let batch = Batch::left_padded(&[vec![1, 2]], 0).unwrap();
    let err = model
        .forward(&batch, &[Site::resid_post(3)], Logits::None)
        .unwrap_err();
    assert!(matches!(err, Error::Site { .. }), "{err}");
    assert!(err.to_string().contains("layer 3 is out of range"), "{err}");
}
