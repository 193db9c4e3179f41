#!/usr/bin/env python3
"""Generation benchmark, transformers and llama.cpp sides (and the prompt token ids all use).

  python3 scripts/bench_generate.py prompts OUT.jsonl      # 8 chat prompts, token ids (HF tokenizer)
  python3 scripts/bench_generate.py hf OUT.jsonl --batch 8 --new 32 --threads 2
  python3 scripts/bench_generate.py llamacpp OUT.jsonl --batch 8 --new 32 --threads 2

Every side decodes greedily for exactly --new tokens (no early stop), so they do the same work.
The llama.cpp side needs PyPI's `llama-cpp-python` (it builds llama.cpp from source, ~6 min on 2
cores); it decodes the batch as llama.cpp's `batched` example does, one sequence id per prompt.
`scripts/bench-generate.sh` runs all sides; see BENCHMARKS.md.
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


def timed(side, run, rows, batch, new, **extra):
    """Runs `run` on every group of `batch` prompts after one warm-up group; prints the JSON row."""
    run(rows[:batch])
    t0 = time.perf_counter()
    for start in range(0, len(rows), batch):
        run(rows[start:start + batch])
    s = time.perf_counter() - t0
    print(json.dumps({"side": side, "batch": batch, "new": new, "prompts": len(rows),
                      "seconds": s, "new_tokens_per_s": len(rows) * new / s, **extra}))


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

    timed("transformers", run, rows, batch, new)


def llamacpp(path, batch, new, threads):
    import llama_cpp as L
    import numpy as np

    rows = [json.loads(l)["tokens"] for l in open(path)]
    L.llama_backend_init()
    model = L.llama_model_load_from_file(os.path.join(GGUF_DIR, GGUF).encode(),
                                         L.llama_model_default_params())
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = 2048, 512, 512, batch
    cp.n_threads = cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cp)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    b = L.llama_batch_init(512, 0, batch)

    def put(n, token, pos, seq, logits):
        b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = token, pos, 1, logits
        b.seq_id[n][0] = seq

    def run(group):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        n, last = 0, []
        for s, r in enumerate(group):
            for p, token in enumerate(r):
                put(n, token, p, s, p == len(r) - 1)
                n += 1
            last.append(n - 1)
        b.n_tokens = n
        assert L.llama_decode(ctx, b) == 0
        pos = [len(r) for r in group]
        for step in range(new):
            tokens = [int(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
                          .argmax()) for i in last]
            if step == new - 1:
                break
            for s, token in enumerate(tokens):
                put(s, token, pos[s], s, True)
                pos[s] += 1
            b.n_tokens, last = len(group), list(range(len(group)))
            assert L.llama_decode(ctx, b) == 0

    timed("llama.cpp", run, rows, batch, new, version=L.__version__)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["prompts", "hf", "llamacpp"])
    p.add_argument("path")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--new", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if a.cmd == "prompts":
        prompts(a.path)
    elif a.cmd == "hf":
        hf(a.path, a.batch, a.new, a.threads)
    else:
        llamacpp(a.path, a.batch, a.new, a.threads)
