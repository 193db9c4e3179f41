#!/usr/bin/env python3
"""Write seed inputs for the `parse` fuzz target into corpus/parse/: the committed per-type
files plus a tiny LLaMA-shaped GGUF (llama.* keys, tokenizer arrays, q/k/v tensors) so the
fuzzer starts inside the LLaMA config, tokenizer and un-permute paths."""
import pathlib
import shutil

import numpy as np
import gguf

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "corpus" / "parse"
OUT.mkdir(parents=True, exist_ok=True)
for p in (HERE.parent / "tests" / "reference").glob("*.gguf"):
    shutil.copy(p, OUT / p.name)

w = gguf.GGUFWriter(str(OUT / "tiny_llama.gguf"), arch="llama")
w.add_block_count(1)
w.add_context_length(16)
w.add_embedding_length(8)
w.add_feed_forward_length(32)
w.add_head_count(2)
w.add_head_count_kv(1)
w.add_rope_freq_base(10000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(4)
w.add_tokenizer_model("gpt2")
w.add_token_list(["<s>", "</s>", "a", "b", "ab"])
w.add_token_types([3, 3, 1, 1, 1])
w.add_token_merges(["a b"])
w.add_bos_token_id(0)
w.add_eos_token_id(1)
w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
rng = np.random.default_rng(0)
w.add_tensor("token_embd.weight", rng.standard_normal((5, 32)).astype(np.float32))
w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((8, 32)).astype(np.float16))
w.add_tensor("blk.0.attn_k.weight", rng.standard_normal((4, 32)).astype(np.float32))
q = gguf.quants.quantize(rng.standard_normal((4, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("blk.0.attn_v.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(sorted(p.name for p in OUT.iterdir()))
