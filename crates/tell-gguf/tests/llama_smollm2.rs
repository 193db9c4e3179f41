//! LLaMA view of the real SmolLM2-135M-Instruct GGUF: hyper-parameters, tokenizer, HF names,
//! HF orientation and the q/k un-permutation. Skips with a message when the file is absent.

mod common;

use tell_gguf::{gguf_name, hf_name, permute_qk, LlamaGguf};

#[test]
fn smollm2_config_and_tokenizer() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let m = LlamaGguf::open(path).unwrap();
    let c = &m.config;
    assert_eq!(c.architecture, "llama");
    assert_eq!(c.block_count, 30);
    assert_eq!(c.embedding_length, 576);
    assert_eq!(c.feed_forward_length, 1536);
    assert_eq!(c.head_count, 9);
    assert_eq!(c.head_count_kv, 3);
    assert_eq!(c.head_dim, 64);
    assert_eq!(c.rope_dimension_count, 64);
    assert_eq!(c.rope_freq_base, 100000.0);
    assert_eq!(c.rms_norm_eps, f64::from(1e-5f32));
    assert_eq!(c.context_length, 8192);
    assert_eq!(c.vocab_size, 49152);
    assert!(c.tie_word_embeddings);

    let t = &m.tokenizer;
    assert_eq!(t.model, "gpt2");
    assert_eq!(t.pre.as_deref(), Some("smollm"));
    assert_eq!(t.tokens.len(), 49152);
    assert_eq!(t.tokens[1], "<|im_start|>");
    assert_eq!(t.tokens[2], "<|im_end|>");
    assert_eq!(t.merges.as_ref().unwrap().len(), 48900);
    assert_eq!(t.merges.as_ref().unwrap()[0], "Ġ t");
    assert_eq!(t.token_types.as_ref().unwrap().len(), 49152);
    assert_eq!(
        t.token_types.as_ref().unwrap()[1],
        3,
        "<|im_start|> is a control token"
    );
    assert_eq!((t.bos_token_id, t.eos_token_id), (Some(1), Some(2)));
    assert_eq!((t.unknown_token_id, t.padding_token_id), (Some(0), Some(2)));
    assert_eq!(t.add_bos_token, Some(false));
    let tmpl = t.chat_template.as_deref().unwrap();
    assert!(tmpl.starts_with("{% for message in messages %}"), "{tmpl}");
    assert!(tmpl.contains("<|im_start|>"));
}

#[test]
fn smollm2_tensors_in_hf_orientation() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let m = LlamaGguf::open(path).unwrap();
    let names = m.hf_tensor_names();
    assert_eq!(names.len(), 272, "every tensor maps to an HF name");
    assert_eq!(names.len(), 2 + 30 * 9);
    assert!(!names.iter().any(|n| n == "lm_head.weight"), "tied");

    let embed = m.tensor_hf("model.embed_tokens.weight").unwrap();
    assert_eq!(embed.shape, vec![49152, 576]);
    let q = m
        .tensor_hf("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(q.shape, vec![576, 576]);
    let k = m
        .tensor_hf("model.layers.7.self_attn.k_proj.weight")
        .unwrap();
    assert_eq!(k.shape, vec![192, 576]);
    let v = m
        .tensor_hf("model.layers.7.self_attn.v_proj.weight")
        .unwrap();
    assert_eq!(v.shape, vec![192, 576]);
    let down = m.tensor_hf("model.layers.29.mlp.down_proj.weight").unwrap();
    assert_eq!(down.shape, vec![576, 1536]);
    let gate = m.tensor_hf("model.layers.0.mlp.gate_proj.weight").unwrap();
    assert_eq!(gate.shape, vec![1536, 576]);
    let norm = m.tensor_hf("model.norm.weight").unwrap();
    assert_eq!(norm.shape, vec![576]);

    // q/k come back un-permuted: permuting them again gives the stored GGUF rows exactly;
    // v is not touched.
    let (raw_q, _) = m.file.tensor_f32("blk.0.attn_q.weight").unwrap();
    assert_ne!(q.data, raw_q);
    assert_eq!(permute_qk(&q.data, 576, 576, 9).unwrap(), raw_q);
    let (raw_k, _) = m.file.tensor_f32("blk.7.attn_k.weight").unwrap();
    assert_eq!(permute_qk(&k.data, 192, 576, 3).unwrap(), raw_k);
    let (raw_v, _) = m.file.tensor_f32("blk.7.attn_v.weight").unwrap();
    assert_eq!(v.data, raw_v);

    assert!(m.tensor_hf("lm_head.weight").is_err());
    assert!(m.tensor_hf("model.layers.30.mlp.up_proj.weight").is_err());
}

#[test]
fn name_mapping_both_ways() {
    let pairs = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        (
            "blk.0.attn_q.weight",
            "model.layers.0.self_attn.q_proj.weight",
        ),
        (
            "blk.1.attn_k.weight",
            "model.layers.1.self_attn.k_proj.weight",
        ),
        (
            "blk.2.attn_v.weight",
            "model.layers.2.self_attn.v_proj.weight",
        ),
        (
            "blk.31.attn_output.weight",
            "model.layers.31.self_attn.o_proj.weight",
        ),
        (
            "blk.4.ffn_gate.weight",
            "model.layers.4.mlp.gate_proj.weight",
        ),
        ("blk.5.ffn_up.weight", "model.layers.5.mlp.up_proj.weight"),
        (
            "blk.6.ffn_down.weight",
            "model.layers.6.mlp.down_proj.weight",
        ),
        (
            "blk.7.attn_norm.weight",
            "model.layers.7.input_layernorm.weight",
        ),
        (
            "blk.8.ffn_norm.weight",
            "model.layers.8.post_attention_layernorm.weight",
        ),
    ];
    for (g, h) in pairs {
        assert_eq!(hf_name(g).as_deref(), Some(h));
        assert_eq!(gguf_name(h).as_deref(), Some(g));
    }
    for bad in [
        "rope_freqs.weight",
        "blk.x.attn_q.weight",
        "blk.0.attn_q.bias",
        "blk.0",
    ] {
        assert_eq!(hf_name(bad), None, "{bad}");
    }
}

/// Our un-permuted q/k equal what transformers' own GGUF loader produces (its
/// `LlamaTensorProcessor`), recorded as sha256 of row-major f32 by make_quant_goldens.py.
#[test]
fn smollm2_unpermute_matches_transformers() {
    use sha2::{Digest, Sha256};
    let Some(path) = common::smollm2() else {
        return;
    };
    let m = LlamaGguf::open(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::reference("smollm2_dequant.json")).unwrap(),
    )
    .unwrap();
    let expected = json["transformers_unpermuted"].as_object().unwrap();
    assert_eq!(expected.len(), 4);
    for (gguf, e) in expected {
        let t = m.tensor_hf(&hf_name(gguf).unwrap()).unwrap();
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{gguf}");
        let mut h = Sha256::new();
        for x in &t.data {
            h.update(x.to_le_bytes());
        }
        assert_eq!(
            format!("{:x}", h.finalize()),
            e["sha256_f32le"].as_str().unwrap(),
            "{gguf}"
        );
    }
}
