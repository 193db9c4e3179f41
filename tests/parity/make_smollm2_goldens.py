#!/usr/bin/env python3
"""Golden outputs of the real SmolLM2-135M-Instruct GGUF, computed by HF transformers.

transformers loads the same GGUF (`gguf_file=`), dequantizes it to f32 and is the reference for
tell's GGUF loader, tokenizer, chat template, forward pass and greedy generation. The GGUF comes
from `scripts/fetch-assets.sh`; the goldens (tens of MB, so not committed) are written beside it:

    python3 tests/parity/make_smollm2_goldens.py   # -> checkpoints/fetched/goldens/smollm2/

golden.json: per prompt, the chat messages, the rendered template, the token ids and the greedy
continuation (32 new tokens) of `generate`; golden.safetensors: per prompt `p{i}.logits` [t, vocab]
and `p{i}.blocks.{l}.hook_resid_post` [t, d] (+ the other sites) from a forward pass alone.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_goldens import capture  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GGUF_DIR = os.path.join(ROOT, "checkpoints", "fetched", "smollm2")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "checkpoints", "fetched", "goldens", "smollm2")

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name three primary colors."},
    ],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [
        {"role": "user", "content": "What is 12 times 12?"},
        {"role": "assistant", "content": "144."},
        {"role": "user", "content": "And 13 times 13?"},
    ],
    [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "Why is the sky blue?"},
    ],
    [{"role": "user", "content": "Translate 'good morning' into Spanish."}],
    [{"role": "user", "content": "List two uses of a paperclip."}],
    [{"role": "user", "content": "Hi!"}],
]
GENERATE = 5  # greedy continuations for the first five prompts


def main():
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.float32).eval()
    os.makedirs(OUT, exist_ok=True)
    tensors, prompts = {}, []
    for i, messages in enumerate(CONVERSATIONS):
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        store = capture(model, torch.tensor([ids]))
        for key, value in store.items():
            tensors[f"p{i}.{key}"] = value[0].contiguous()
        entry = {"messages": messages, "text": text, "tokens": ids}
        if i < GENERATE:
            with torch.no_grad():
                out = model.generate(
                    torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    do_sample=False,
                    max_new_tokens=32,
                    pad_token_id=tok.eos_token_id,
                )
            new = out[0, len(ids):].tolist()
            entry["greedy"] = new
            entry["greedy_text"] = tok.decode(new, skip_special_tokens=True)
        prompts.append(entry)
        print(i, repr(entry.get("greedy_text", "")))
    save_file(tensors, os.path.join(OUT, "golden.safetensors"))
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(
            {
                "gguf": GGUF,
                "layers": model.config.num_hidden_layers,
                "eos_token_id": tok.eos_token_id,
                "prompts": prompts,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
