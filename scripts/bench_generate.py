#!/usr/bin/env python3
"""Generation benchmark, transformers side (and the prompt token ids both sides use).

  python3 scripts/bench_generate.py prompts OUT.jsonl      # 8 chat prompts, token ids (HF tokenizer)
  python3 scripts/bench_generate.py hf OUT.jsonl --batch 8 --new 32 --threads 2

Both sides decode greedily for exactly --new tokens (no early stop), so they do the same work.
`scripts/bench-generate.sh` runs both sides; see BENCHMARKS.md.
"""
import argparse
import json
import os
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
GGUF_DIR = os.path.join(ROOT, "checkpoints", "fetched", "smollm2")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTIONS = [
    "What is the capital of France?",
    "Name three primary colors.",
    "Write a haiku about the sea.",
    "Why is the sky blue? Answer briefly.",
    "Give me a tip for learning to cook.",
    "What does a linear probe measure in a neural network?",
    "Translate 'good morning' into Spanish and German.",
    "List two uses of a paperclip.",
]


def prompts(out):
    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF)
    with open(out, "w") as f:
        for i, q in enumerate(QUESTIONS):
            text = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            f.write(json.dumps({"id": f"q{i}", "tokens": ids}) + "\n")


def hf(path, batch, new, threads):
    torch.set_num_threads(threads)
    rows = [json.loads(l)["tokens"] for l in open(path)]
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.float32).eval()
    pad = model.config.eos_token_id if isinstance(model.config.eos_token_id, int) else 2

    def run(group):
        t = max(len(r) for r in group)
        ids = torch.tensor([[pad] * (t - len(r)) + r for r in group])
        mask = torch.tensor([[0] * (t - len(r)) + [1] * len(r) for r in group])
        with torch.inference_mode():
            model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new,
                           min_new_tokens=new, pad_token_id=pad)

    run(rows[:batch])  # warm-up
    t0 = time.perf_counter()
    for start in range(0, len(rows), batch):
        run(rows[start:start + batch])
    s = time.perf_counter() - t0
    print(json.dumps({"side": "transformers", "batch": batch, "new": new, "prompts": len(rows),
                      "seconds": s, "new_tokens_per_s": len(rows) * new / s}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["prompts", "hf"])
    p.add_argument("path")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--new", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    prompts(a.path) if a.cmd == "prompts" else hf(a.path, a.batch, a.new, a.threads)
