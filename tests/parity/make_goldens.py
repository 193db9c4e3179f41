#!/usr/bin/env python3
"""Build tiny random-weight LLaMA checkpoints with HF transformers and write golden outputs.

Rerun with `python3 tests/parity/make_goldens.py` (needs torch, transformers, safetensors); it
rewrites tests/parity/models/*/ deterministically (fixed seeds). The Rust tests in
crates/tell-llama/tests/parity.rs load each checkpoint with tell and compare with the goldens.

Each model directory holds the checkpoint (config.json + safetensors) and:
- golden.safetensors: for each prompt i, computed by transformers alone (no padding):
  `p{i}.logits` [t, vocab], `p{i}.blocks.{l}.hook_{resid_pre,attn_out,resid_mid,mlp_out,resid_post}`
  [t, d], `p{i}.ln_final` [t, d]; and `batch.logits` [n, T, vocab], the same prompts run as one
  left-padded batch with an attention mask and mask-derived position ids.
- golden.json: the prompts' token ids, the transformers and torch versions.
"""
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models")
HOOKS = ["resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"]
LENGTHS = [11, 7, 4]

BASE = dict(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)


def llama3_scaling():
    return dict(
        rope_type="llama3",
        factor=8.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=32,
    )


# name -> (config overrides, rope theta, rope scaling, options)
CASES = {
    # GQA 4:1, rope theta 500000, no scaling; config.json as the Hub ships LLaMA 3 (transformers 4).
    "gqa": ({}, 500000.0, None, {"style": "hub"}),
    # LLaMA 3.1 rope scaling, config.json in the Hub's 3.1 style (rope_scaling dict).
    "llama3-rope": ({"num_attention_heads": 4, "head_dim": 16}, 500000.0, llama3_scaling(), {"style": "hub"}),
    # The same scaling as transformers 5 writes it (rope_parameters).
    "llama3-rope-v5": ({"num_attention_heads": 4, "head_dim": 16}, 500000.0, llama3_scaling(), {"style": "v5"}),
    # Tied input and output embeddings (no lm_head.weight in the file).
    "tied": ({"tie_word_embeddings": True}, 10000.0, None, {"style": "v5"}),
    # Weights stored as bf16; the reference runs the same rounded weights in f32.
    "bf16": ({}, 500000.0, None, {"style": "v5", "dtype": torch.bfloat16}),
    # Several safetensors shards with model.safetensors.index.json.
    "sharded": ({}, 500000.0, None, {"style": "v5", "shard": "60KB"}),
    # head_dim given explicitly and unequal to hidden_size / heads.
    "head-dim": ({"num_attention_heads": 4, "head_dim": 32}, 500000.0, None, {"style": "v5"}),
}


def build(name, overrides, theta, scaling, opts, seed):
    torch.manual_seed(seed)
    kwargs = dict(BASE)
    kwargs.update(overrides)
    params = {"rope_type": "default", "rope_theta": theta}
    if scaling:
        params = dict(scaling, rope_theta=theta)
    config = LlamaConfig(rope_parameters=params, **kwargs)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        # Larger-than-default weights so that every layer changes the result visibly.
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    dtype = opts.get("dtype", torch.float32)
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    save_kwargs = {}
    if "shard" in opts:
        save_kwargs["max_shard_size"] = opts["shard"]
    model.to(dtype).save_pretrained(d, **save_kwargs)
    # Reload what was written, in f32, so the reference uses exactly the stored (rounded) weights.
    model = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    if opts["style"] == "hub":
        to_hub_style(os.path.join(d, "config.json"))
    return model, d


def to_hub_style(path):
    """Rewrite config.json the way the Hub ships Meta-Llama-3(.1)-8B (transformers 4.x)."""
    with open(path) as f:
        cfg = json.load(f)
    params = cfg.pop("rope_parameters")
    cfg["rope_theta"] = params.pop("rope_theta")
    cfg["rope_scaling"] = None if params.get("rope_type") == "default" else params
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    if cfg.get("head_dim") == cfg["hidden_size"] // cfg["num_attention_heads"]:
        del cfg["head_dim"]  # the Hub's LLaMA 3 files leave it to be derived
    cfg.pop("mlp_bias", None)  # added to the Hub's files only with LLaMA 3.1
    cfg["transformers_version"] = "4.40.0.dev0"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def capture(model, ids, mask=None, positions=None):
    store = {}
    handles = []
    layers = model.model.layers
    for l, layer in enumerate(layers):
        def pre(mod, args, kwargs, l=l):
            x = args[0] if args else kwargs["hidden_states"]
            store[f"blocks.{l}.hook_resid_pre"] = x.detach().clone()

        def post(mod, args, kwargs, out, l=l):
            x = out[0] if isinstance(out, tuple) else out
            store[f"blocks.{l}.hook_resid_post"] = x.detach().clone()

        def attn(mod, args, out, l=l):
            store[f"blocks.{l}.hook_attn_out"] = out[0].detach().clone()

        def mlp(mod, args, out, l=l):
            store[f"blocks.{l}.hook_mlp_out"] = out.detach().clone()

        handles.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(layer.register_forward_hook(post, with_kwargs=True))
        handles.append(layer.self_attn.register_forward_hook(attn))
        handles.append(layer.mlp.register_forward_hook(mlp))
    handles.append(
        model.model.norm.register_forward_hook(
            lambda m, a, o: store.__setitem__("ln_final", o.detach().clone())
        )
    )
    with torch.no_grad():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            output_hidden_states=True,
        )
    for h in handles:
        h.remove()
    for l in range(len(layers)):
        store[f"blocks.{l}.hook_resid_mid"] = (
            store[f"blocks.{l}.hook_resid_pre"] + store[f"blocks.{l}.hook_attn_out"]
        )
    # The hooks agree with HF's own hidden_states (the last entry is after the final norm).
    hs = out.hidden_states
    for l in range(len(layers) - 1):
        assert torch.equal(hs[l + 1], store[f"blocks.{l}.hook_resid_post"])
    assert torch.equal(hs[-1], store["ln_final"])
    store["logits"] = out.logits.detach().clone()
    return store


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for seed, (name, (overrides, theta, scaling, opts)) in enumerate(CASES.items()):
        model, d = build(name, overrides, theta, scaling, opts, seed)
        gen = torch.Generator().manual_seed(1000 + seed)
        vocab = model.config.vocab_size
        prompts = [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in LENGTHS]
        tensors = {}
        for i, p in enumerate(prompts):
            store = capture(model, torch.tensor([p]))
            for key, value in store.items():
                tensors[f"p{i}.{key}"] = value[0].contiguous()
        # The same prompts as one left-padded batch.
        t = max(LENGTHS)
        ids = torch.zeros((len(prompts), t), dtype=torch.long)
        mask = torch.zeros((len(prompts), t), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, t - len(p):] = torch.tensor(p)
            mask[i, t - len(p):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        batch = capture(model, ids, mask, positions)
        tensors["batch.logits"] = batch["logits"].contiguous()
        save_file(tensors, os.path.join(d, "golden.safetensors"))
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(
                {
                    "prompts": prompts,
                    "layers": model.config.num_hidden_layers,
                    "transformers": transformers.__version__,
                    "torch": torch.__version__,
                },
                f,
                indent=1,
            )
        print(f"{name}: {sorted(os.listdir(d))}")


if __name__ == "__main__":
    main()
