#!/usr/bin/env python3
"""Prefill benchmark, transformers side, and the random checkpoint both sides load.

  python3 scripts/bench_prefill.py make DIR      # SmolLM2-135M-shaped random checkpoint (f32)
  python3 scripts/bench_prefill.py hf DIR --batch 8 --seq 128 --threads 2 --reps 3

`scripts/bench-prefill.sh` runs both sides in one go; see BENCHMARKS.md.
"""
import argparse
import json
import os
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SMOLLM2 = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
)


def make(d):
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2))
    model.save_pretrained(d)


def tokens(batch, seq, vocab):
    # The same deterministic ids as the Rust side: (b * 7919 + t * 104729) % vocab.
    return torch.tensor(
        [[(b * 7919 + t * 104729) % vocab for t in range(seq)] for b in range(batch)]
    )


def hf(d, batch, seq, threads, reps, logits):
    torch.set_num_threads(threads)
    model = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ids = tokens(batch, seq, model.config.vocab_size)
    mask = torch.ones_like(ids)
    # Capturing needs the residual stream only; the base model skips the LM head, as tell does.
    run = model if logits else model.model
    times = []
    with torch.inference_mode():
        run(input_ids=ids, attention_mask=mask, output_hidden_states=True)  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            out = run(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            times.append(time.perf_counter() - t0)
            assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    best = min(times)
    print(json.dumps({"side": "transformers", "logits": logits, "batch": batch, "seq": seq,
                      "threads": threads, "seconds": best, "tokens_per_s": batch * seq / best,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["make", "hf"])
    p.add_argument("dir")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--logits", action="store_true")
    a = p.parse_args()
    if a.cmd == "make":
        make(a.dir)
    else:
        hf(a.dir, a.batch, a.seq, a.threads, a.reps, a.logits)
