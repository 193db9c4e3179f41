#!/usr/bin/env python3
"""Logistic-probe reference on real SmolLM2 activations (issue 5 acceptance, SmolLM2 part).

Runs the SmolLM2-135M-Instruct GGUF with HF transformers (f32) on the labelled instructions of
`checkpoints/fetched/datasets/instructions.csv` (label 0 harmful, 1 benign), each rendered twice
through the chat template (without and with a system prompt, so a query has two records and the
split must be grouped), and keeps the last-token residual stream after block LAYER
(`blocks.{l}.hook_resid_post` for l in LAYERS, before the final norm). It then fits scikit-learn's
`LogisticRegression(solver="lbfgs")` on the standardised training rows of a fixed grouped split
with C = 1 / (LAMBDA * n_train) (tell's mean-loss convention) and records its weights and test
AUROC. The middle block separates harmful from benign perfectly (AUROC 1), so early blocks,
where the probe errs, are recorded too. The Rust test `crates/tell-probe/tests/smollm2_parity.rs`
fits the same data.

    python3 tests/parity/make_smollm2_probe.py   # -> checkpoints/fetched/goldens/smollm2-probe/

Outputs (not committed): features.safetensors (`x.{l}` f32 [n, d], `y`, `group`, `test` int64
[n]) and golden.json (lambda, C, split sizes, per layer sklearn coef/intercept and test AUROC).
"""
import csv
import json
import os

import numpy as np
import sklearn
import torch
import transformers
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GGUF_DIR = os.path.join(ROOT, "checkpoints", "fetched", "smollm2")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA = os.path.join(ROOT, "checkpoints", "fetched", "datasets", "instructions.csv")
OUT = os.path.join(ROOT, "checkpoints", "fetched", "goldens", "smollm2-probe")

LAYERS = [0, 2, 15]  # of 30: two early blocks (imperfect probes) and a middle one
LAMBDA = 1e-2  # mean log-loss + LAMBDA/2 |w|^2
SYSTEM = "You are a helpful assistant."
TEST_EVERY = 4  # query i is in the test split when i % TEST_EVERY == TEST_EVERY - 1


def main():
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.float32).eval()
    with open(DATA, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["instruction"].strip()]
    feats, ys, groups = {l: [] for l in LAYERS}, [], []
    for i, r in enumerate(rows):
        for messages in (
            [{"role": "user", "content": r["instruction"]}],
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": r["instruction"]}],
        ):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            # hidden_states[0] is the embedding output, [l + 1] the output of block l.
            for l in LAYERS:
                feats[l].append(out.hidden_states[l + 1][0, -1].float().numpy())
            ys.append(int(r["label"]))
            groups.append(i)
        if i % 20 == 0:
            print(f"query {i} of {len(rows)}", flush=True)
    y = np.array(ys, dtype=np.int64)
    g = np.array(groups, dtype=np.int64)
    test = (g % TEST_EVERY == TEST_EVERY - 1).astype(np.int64)
    tr, te = test == 0, test == 1
    n_train = int(tr.sum())
    C = 1.0 / (LAMBDA * n_train)
    tensors = {"y": y, "group": g, "test": test}
    per_layer = {}
    for l in LAYERS:
        x = np.stack(feats[l]).astype(np.float32)
        tensors[f"x.{l}"] = x
        sc = StandardScaler().fit(x[tr].astype(np.float64))
        xtr, xte = sc.transform(x[tr].astype(np.float64)), sc.transform(x[te].astype(np.float64))
        lr = LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=100000).fit(xtr, y[tr])
        test_auroc = float(roc_auc_score(y[te], lr.decision_function(xte)))
        per_layer[str(l)] = {
            "site": f"blocks.{l}.hook_resid_post",
            "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0]),
            "n_iter": int(lr.n_iter_[0]),
            "test_auroc": test_auroc,
        }
        print(f"block {l}: {len(y)} records ({n_train} train, {int(te.sum())} test), d "
              f"{x.shape[1]}, sklearn test AUROC {test_auroc:.6f}, {int(lr.n_iter_[0])} iterations")
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "features.safetensors"))
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(
            {
                "gguf": GGUF,
                "position": "last",
                "layers": per_layer,
                "lambda": LAMBDA,
                "C": C,
                "n_train": n_train,
                "n_test": int(te.sum()),
                "n_queries": len(rows),
                "sklearn": sklearn.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
