#!/usr/bin/env python3
"""Helpers of scripts/bench-capture*.sh.

  bench_capture.py prompts OUT.jsonl N [--min 8] [--max 32] [--vocab 49152] [--seed 0]
      writes N token-id prompt lines (random ids, lengths uniform in [min, max]; ids avoid the
      first 17 ids, SmolLM2's special tokens)
  bench_capture.py hf GGUF PROMPTS.jsonl --batch 8 --threads 2 [--window 64]
      transformers on the same prompts: the same length-sorted windows and batches as tell,
      left padding + attention mask, output_hidden_states=True, every layer's last-token slice
      copied to numpy; prints one JSON line with tokens/s of the loop (model load excluded)
"""
import argparse
import json
import os
import random
import sys
import time


def make_prompts(a):
    rng = random.Random(a.seed)
    with open(a.out, "w") as f:
        for i in range(a.n):
            n = rng.randint(a.min, a.max)
            ids = [rng.randrange(17, a.vocab) for _ in range(n)]
            f.write(json.dumps({"id": f"b{i}", "tokens": ids, "query_id": f"q{i // 4}"}) + "\n")


def hf(a):
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    if os.path.isdir(a.gguf):  # a safetensors checkpoint directory
        model = AutoModelForCausalLM.from_pretrained(a.gguf, dtype=torch.float32).eval()
    else:
        d, name = os.path.split(os.path.abspath(a.gguf))
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    prompts = [json.loads(l)["tokens"] for l in open(a.prompts)]
    layers = model.config.num_hidden_layers
    out = np.zeros((layers, len(prompts), model.config.hidden_size), dtype=np.float32)
    tokens = sum(len(p) for p in prompts)
    start = time.perf_counter()
    with torch.inference_mode():
        for w in range(0, len(prompts), a.window):
            idx = sorted(range(w, min(w + a.window, len(prompts))), key=lambda i: len(prompts[i]))
            for b in range(0, len(idx), a.batch):
                rows = idx[b : b + a.batch]
                seq = max(len(prompts[i]) for i in rows)
                ids = torch.zeros((len(rows), seq), dtype=torch.long)
                mask = torch.zeros((len(rows), seq), dtype=torch.long)
                for r, i in enumerate(rows):
                    p = prompts[i]
                    ids[r, seq - len(p) :] = torch.tensor(p)
                    mask[r, seq - len(p) :] = 1
                res = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                # hidden_states[l + 1] is block l's output (the last one after the final norm).
                for l in range(layers):
                    out[l, rows] = res.hidden_states[l + 1][:, -1, :].numpy()
    secs = time.perf_counter() - start
    print(json.dumps({"side": "transformers", "records": len(prompts), "tokens": tokens,
                      "seconds": round(secs, 3), "tokens_per_s": round(tokens / secs, 1)}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("prompts")
    m.add_argument("out")
    m.add_argument("n", type=int)
    m.add_argument("--min", type=int, default=8)
    m.add_argument("--max", type=int, default=32)
    m.add_argument("--vocab", type=int, default=49152)
    m.add_argument("--seed", type=int, default=0)
    h = sub.add_parser("hf")
    h.add_argument("gguf")
    h.add_argument("prompts")
    h.add_argument("--batch", type=int, default=8)
    h.add_argument("--threads", type=int, default=2)
    h.add_argument("--window", type=int, default=64)
    a = p.parse_args()
    make_prompts(a) if a.cmd == "prompts" else hf(a)


if __name__ == "__main__":
    sys.exit(main())
