"""Writes SmolLM2-135M-Instruct (from the fetched GGUF, dequantized by transformers) as bf16 and as
the same values widened to f32, plus 32 prompts of 128 random token ids (for bench-bf16.sh)."""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

out = sys.argv[1]
gguf_dir = "checkpoints/fetched/smollm2"
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=name, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=name)
from safetensors.torch import save_file


def save(dtype, sub):
    # save_pretrained refuses a model loaded from GGUF: the tensors and the config by hand.
    import os
    os.makedirs(f"{out}/{sub}", exist_ok=True)
    # The bf16 values; f32 holds them widened, exactly.
    sd = {k: v.to(torch.bfloat16).to(dtype).contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    save_file(sd, f"{out}/{sub}/model.safetensors", metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["torch_dtype"] = "bfloat16" if dtype == torch.bfloat16 else "float32"
    with open(f"{out}/{sub}/config.json", "w") as f:
        json.dump(cfg, f, indent=2)
    tok.save_pretrained(f"{out}/{sub}")


save(torch.bfloat16, "bf16")
save(torch.float32, "f32")
g = torch.Generator().manual_seed(0)
with open(f"{out}/prompts.jsonl", "w") as f:
    for i in range(32):
        ids = torch.randint(0, model.config.vocab_size, (128,), generator=g).tolist()
        f.write(json.dumps({"id": f"p{i}", "tokens": ids}) + "\n")
