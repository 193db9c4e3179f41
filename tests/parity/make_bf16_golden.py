#!/usr/bin/env python3
"""transformers' bf16 CPU forward of the bf16 parity checkpoint, for issue 18's bf16 acceptance.

tell keeps a bf16 checkpoint's weights as bf16 (2 bytes a value) but computes in f32, so its
logits must lie within bf16 rounding of what transformers computes in bf16 on the same weights.
"Within bf16 rounding" is measured, not assumed: transformers' own bf16 forward against its f32
forward on the same weights gives the yardstick.

Rerun with `python3 tests/parity/make_bf16_golden.py` (needs torch, transformers, safetensors),
after make_goldens.py. Writes into tests/parity/models/bf16/:
- golden-bf16.safetensors: `p{i}.logits` [t, vocab], transformers' bf16 forward of prompt i
  (alone, no padding), widened to f32;
- golden-bf16.json: the prompts, `hf_bf16_vs_f32` (the largest max|bf16 - f32| / max|f32| over
  the prompts' logits) and the transformers and torch versions.
The test is crates/tell-llama/tests/bf16.rs.
"""
import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "bf16")


def main():
    prompts = json.load(open(os.path.join(DIR, "golden.json")))["prompts"]
    m16 = LlamaForCausalLM.from_pretrained(DIR, dtype=torch.bfloat16).eval()
    m32 = LlamaForCausalLM.from_pretrained(DIR, dtype=torch.float32).eval()
    out, worst = {}, 0.0
    for i, p in enumerate(prompts):
        ids = torch.tensor([p])
        with torch.no_grad():
            a = m16(ids).logits[0].float()
            b = m32(ids).logits[0]
        out[f"p{i}.logits"] = a.contiguous()
        worst = max(worst, ((a - b).abs().max() / b.abs().max()).item())
    save_file(out, os.path.join(DIR, "golden-bf16.safetensors"))
    meta = {
        "prompts": prompts,
        "hf_bf16_vs_f32": worst,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    with open(os.path.join(DIR, "golden-bf16.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"transformers bf16 vs f32 on the bf16 weights: {worst:.3e}")


if __name__ == "__main__":
    main()
