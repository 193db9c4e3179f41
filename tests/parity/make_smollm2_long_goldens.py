#!/usr/bin/env python3
"""Golden outputs of the real SmolLM2-135M-Instruct GGUF on long prompts, computed by transformers.

The short chat prompts of make_smollm2_goldens.py never reach the blocks that long prompts use:
several blocks of query rows and vectors of keys in attention, several runs of rows in the prefill
products. Two prompts of 700 and 530 fixed pseudo-random token ids are checked here, alone and
as one left-padded batch (the shorter row padded by 170).

    python3 tests/parity/make_smollm2_long_goldens.py   # -> checkpoints/fetched/goldens/smollm2-long/

golden.safetensors: per prompt `p{i}.blocks.{l}.hook_resid_post` [3, d] and `p{i}.logits` [3, vocab]
at positions 0, t // 2 and t - 1 (golden.json lists them); `batch.logits` [2, vocab], each row's
last position in the left-padded batch (attention mask, mask-derived position ids).
The test is crates/tell-llama/tests/smollm2.rs.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_goldens import capture  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GGUF_DIR = os.path.join(ROOT, "checkpoints", "fetched", "smollm2")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "checkpoints", "fetched", "goldens", "smollm2-long")
LENGTHS = [700, 530]


def main():
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.float32).eval()
    layers = model.config.num_hidden_layers
    gen = torch.Generator().manual_seed(18)
    prompts = [torch.randint(10, 49000, (n,), generator=gen).tolist() for n in LENGTHS]
    os.makedirs(OUT, exist_ok=True)
    tensors, positions = {}, []
    for i, p in enumerate(prompts):
        at = [0, len(p) // 2, len(p) - 1]
        positions.append(at)
        store = capture(model, torch.tensor([p]))
        for l in range(layers):
            key = f"blocks.{l}.hook_resid_post"
            tensors[f"p{i}.{key}"] = store[key][0, at].contiguous()
        tensors[f"p{i}.logits"] = store["logits"][0, at].contiguous()
    t = max(LENGTHS)
    ids = torch.zeros((len(prompts), t), dtype=torch.long)
    mask = torch.zeros((len(prompts), t), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, t - len(p):] = torch.tensor(p)
        mask[i, t - len(p):] = 1
    batch = capture(model, ids, mask, (mask.cumsum(-1) - 1).clamp(min=0))
    tensors["batch.logits"] = batch["logits"][:, -1].contiguous()
    save_file(tensors, os.path.join(OUT, "golden.safetensors"))
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(
            {
                "gguf": GGUF,
                "layers": layers,
                "prompts": prompts,
                "positions": positions,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            f,
        )


if __name__ == "__main__":
    main()
