//! Writing the trained organism as an ordinary Hugging Face LLaMA checkpoint: `config.json`
//! (`LlamaForCausalLM`), `model.safetensors` (f32, HF names, `[out, in]` linear weights) and
//! `generation_config.json` (EOS = the end-of-turn token). The tokenizer files are written by
//! [`crate::vocab`].

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor};
use safetensors::{tensor::TensorView, Dtype};

use crate::error::{OrganismError, Result};
use crate::model::{ModelSpec, Organism};
use crate::vocab::write_json;

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap_or_default()
}

/// `[in, out]` values as HF's `[out, in]`.
fn transposed<B: Backend>(w: Tensor<B, 2>) -> (Vec<f32>, Vec<usize>) {
    let [d_in, d_out] = w.dims();
    let v = values(w);
    let mut out = vec![0f32; v.len()];
    for i in 0..d_in {
        for o in 0..d_out {
            out[o * d_in + i] = v[i * d_out + o];
        }
    }
    (out, vec![d_out, d_in])
}

/// Every tensor of the model under its HF name, in HF layout.
pub fn hf_tensors<B: Backend>(model: &Organism<B>) -> Vec<(String, Vec<f32>, Vec<usize>)> {
    let mut out = Vec::new();
    let e = model.embed.val();
    let dims = e.dims().to_vec();
    out.push(("model.embed_tokens.weight".to_owned(), values(e), dims));
    for (l, b) in model.blocks.iter().enumerate() {
        let p = format!("model.layers.{l}");
        let norm = |name: &str, w: Tensor<B, 1>| {
            let d = w.dims().to_vec();
            (format!("{p}.{name}.weight"), values(w), d)
        };
        out.push(norm("input_layernorm", b.input_norm.weight.val()));
        out.push(norm(
            "post_attention_layernorm",
            b.post_attn_norm.weight.val(),
        ));
        for (name, w) in [
            ("self_attn.q_proj", &b.attn.q),
            ("self_attn.k_proj", &b.attn.k),
            ("self_attn.v_proj", &b.attn.v),
            ("self_attn.o_proj", &b.attn.o),
            ("mlp.gate_proj", &b.mlp.gate),
            ("mlp.up_proj", &b.mlp.up),
            ("mlp.down_proj", &b.mlp.down),
        ] {
            let (v, d) = transposed(w.val());
            out.push((format!("{p}.{name}.weight"), v, d));
        }
    }
    let n = model.norm.weight.val();
    let d = n.dims().to_vec();
    out.push(("model.norm.weight".to_owned(), values(n), d));
    let (v, d) = transposed(model.lm_head.val());
    out.push(("lm_head.weight".to_owned(), v, d));
    out
}

/// Writes `config.json`, `model.safetensors` and `generation_config.json` into `dir`.
pub fn write_checkpoint<B: Backend>(
    dir: &Path,
    model: &Organism<B>,
    spec: &ModelSpec,
    vocab_size: usize,
    eos: u32,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| OrganismError::io(dir, e))?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim(),
        "hidden_act": "silu",
        "max_position_embeddings": spec.max_position_embeddings,
        "rms_norm_eps": spec.rms_norm_eps,
        "rope_theta": spec.rope_theta,
        "rope_scaling": null,
        "tie_word_embeddings": false,
        "attention_bias": false,
        "mlp_bias": false,
        "bos_token_id": null,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "torch_dtype": "float32",
    });
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::json!({"eos_token_id": eos, "pad_token_id": eos, "do_sample": false}),
    )?;
    let tensors = hf_tensors(model);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, v, _)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, _, shape), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OrganismError::Export {
            path: dir.to_owned(),
            message: e.to_string(),
        })?;
    let path = dir.join("model.safetensors");
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_owned(),
        "pt".to_owned(),
    )]));
    safetensors::serialize_to_file(views, metadata, &path).map_err(|e| OrganismError::Export {
        path: path.clone(),
        message: e.to_string(),
    })
}
