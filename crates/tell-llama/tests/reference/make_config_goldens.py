#!/usr/bin/env python3
"""Write the config.json files that transformers itself writes for LLaMA checkpoints.

`tell` refuses config fields it does not know (they may change the architecture), so every field
that transformers writes for a LlamaConfig must be known to it: used, or accepted as harmless.
This script records what transformers really writes; crates/tell-llama/tests/config_goldens.rs
loads every file and must accept it.

For the installed transformers version V it writes, under configs/transformers-V/:
- `<name>.saved.json`: what `config.save_pretrained(dir)` writes (the diff against the defaults,
  the file a user finds next to the weights);
- `<name>.full.json`: `config.to_json_file(path, use_diff=False)`, the full dict with every
  default key (what `to_dict()` holds);
for four configs: `default` (LlamaConfig()), `llama31` (LLaMA 3.1 8B: GQA, llama3 rope scaling;
transformers before 4.43 refuses that scaling, so 4.40.2 writes none), `smollm2` (SmolLM2-135M-Instruct's
Hub config.json, loaded and saved again: it carries the Nanotron export keys `is_llama_config` and
`rope_interleaved` along) and `smollm2-gguf` (the config transformers derives from the fetched
SmolLM2 GGUF, `from_pretrained(..., gguf_file=...)`: it adds `unk_token_id` and
`_model_name_or_path`; needs torch, the `gguf` package and transformers 4.41 or later, so 4.40.2
writes none).

The committed goldens were made with transformers 4.40.2, 4.57.6, 5.0.0 and 5.25.0 (torch 2.15,
gguf 0.19), each in its own virtual environment that sees the system's torch and gguf (reading a
GGUF needs both; the other configs need neither):

    for v in 4.40.2 4.57.6 5.0.0 5.25.0; do
        python3 -m venv --system-site-packages /tmp/tf-$v
        /tmp/tf-$v/bin/pip install transformers==$v
        /tmp/tf-$v/bin/python crates/tell-llama/tests/reference/make_config_goldens.py
    done
"""
import json
import os
import shutil
import tempfile

import transformers
from transformers import AutoConfig, LlamaConfig

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "../../../.."))
# Relative to REPO: transformers records the directory in `_name_or_path`, and the goldens should
# not name the machine that made them.
GGUF_DIR = "checkpoints/fetched/smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(HERE, "configs", f"transformers-{transformers.__version__}")

# SmolLM2-135M-Instruct's config.json as the Hub ships it (written by transformers 4.42.3).
SMOLLM2 = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 576,
    "initializer_range": 0.041666666666666664,
    "intermediate_size": 1536,
    "is_llama_config": True,
    "max_position_embeddings": 8192,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 9,
    "num_hidden_layers": 30,
    "num_key_value_heads": 3,
    "pad_token_id": 2,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_interleaved": False,
    "rope_scaling": None,
    "rope_theta": 100000,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.42.3",
    "use_cache": True,
    "vocab_size": 49152,
}

LLAMA31 = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_scaling=dict(
        rope_type="llama3",
        factor=8.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=8192,
    ),
    bos_token_id=128000,
    eos_token_id=[128001, 128008, 128009],
    tie_word_embeddings=False,
    architectures=["LlamaForCausalLM"],
)


def smollm2():
    """SmolLM2's Hub config read the way from_pretrained reads a config.json."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(SMOLLM2, f)
        return LlamaConfig.from_pretrained(d)


def write(name, config):
    with tempfile.TemporaryDirectory() as d:
        config.save_pretrained(d)
        shutil.copy(os.path.join(d, "config.json"), os.path.join(OUT, f"{name}.saved.json"))
    config.to_json_file(os.path.join(OUT, f"{name}.full.json"), use_diff=False)


def main():
    os.chdir(REPO)
    os.makedirs(OUT, exist_ok=True)
    write("default", LlamaConfig())
    try:
        write("llama31", LlamaConfig(**LLAMA31))
    except ValueError as e:
        print(f"llama31 skipped: transformers {transformers.__version__} refuses it: {e}")
    write("smollm2", smollm2())
    try:
        write("smollm2-gguf", AutoConfig.from_pretrained(GGUF_DIR, gguf_file=GGUF))
    except (ImportError, OSError, TypeError, ValueError) as e:
        print(f"smollm2-gguf skipped: {e}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
