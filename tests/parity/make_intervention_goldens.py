#!/usr/bin/env python3
"""Golden outputs of interventions (add, ablate, patch) made with transformers forward hooks.

Rerun with `python3 tests/parity/make_intervention_goldens.py` after make_goldens.py (it reads the
tiny checkpoints under tests/parity/models/). For each model in MODELS it writes
`interventions.safetensors` and `interventions.json` next to the checkpoint:

- each case edits prompt 0 of golden.json with hooks that return a new value, the way `tell`'s
  interventions run (the edit happens where the site is computed, before anything reads it):
  `add` (h += alpha * v), `ablate` (h -= (h . u) u, u = v / |v|), `patch` (h = the value of
  prompt 1 at the same site, layer and position, where prompt 1 has one);
- `{case}.logits` [t, vocab] and `{case}.{site}` [t, d] for every site, captured after the edits
  (a capture at an edited site holds the edited value), as make_goldens.py's `capture` does;
- `vector.{case}` [d]: the vector each add/ablate case uses (seeded).
crates/tell-llama/tests/interventions.rs reads them.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))

MODELS = ["gqa", "llama3-rope", "tied"]

# name -> (op, hook, layers, positions as a sorted list or "all", alpha)
CASES = {
    "add_attn_out_l1_all": ("add", "attn_out", [1], "all", 2.5),
    "add_resid_post_l0_pos2to4": ("add", "resid_post", [0], [2, 3, 4], -4.0),
    "add_mlp_out_l2_last": ("add", "mlp_out", [2], "last", 3.0),
    "ablate_resid_pre_all_layers": ("ablate", "resid_pre", "every", "all", None),
    "ablate_resid_post_l1_all": ("ablate", "resid_post", [1], "all", None),
    "patch_resid_post_l1_pos1to3": ("patch", "resid_post", [1], [1, 2, 3], None),
    "patch_attn_out_every_all": ("patch", "attn_out", "every", "all", None),
}


def hook_fn(op, vector, positions, t, source):
    """Returns f(h, layer, hook) that edits a [1, t, d] value at the chosen positions."""

    def covered():
        if positions == "all":
            return list(range(t))
        if positions == "last":
            return [t - 1]
        return [p for p in positions if p < t]

    def edit(h, key):
        h = h.clone()
        for p in covered():
            if op == "add":
                h[0, p] = h[0, p] + ALPHA[0] * vector
            elif op == "ablate":
                u = vector / vector.norm()
                h[0, p] = h[0, p] - (h[0, p] @ u) * u
            elif op == "patch":
                src = source[key]
                if p < src.shape[1]:
                    h[0, p] = src[0, p]
        return h

    return edit


ALPHA = [0.0]


def run_case(model, ids, op, hook, layers, positions, vector, source):
    t = ids.shape[1]
    edit = hook_fn(op, vector, positions, t, source)
    handles = []
    for l, layer in enumerate(model.model.layers):
        if l not in layers:
            continue
        key = f"blocks.{l}.hook_{hook}"
        if hook == "resid_pre":
            def pre(mod, args, kwargs, key=key):
                if args:
                    return (edit(args[0], key),) + tuple(args[1:]), kwargs
                kwargs = dict(kwargs)
                kwargs["hidden_states"] = edit(kwargs["hidden_states"], key)
                return args, kwargs
            handles.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        elif hook == "resid_post":
            def post(mod, args, kwargs, out, key=key):
                if isinstance(out, tuple):
                    return (edit(out[0], key),) + tuple(out[1:])
                return edit(out, key)
            handles.append(layer.register_forward_hook(post, with_kwargs=True))
        elif hook == "attn_out":
            def attn(mod, args, out, key=key):
                return (edit(out[0], key),) + tuple(out[1:])
            handles.append(layer.self_attn.register_forward_hook(attn))
        elif hook == "mlp_out":
            def mlp(mod, args, out, key=key):
                return edit(out, key)
            handles.append(layer.mlp.register_forward_hook(mlp))
        else:
            raise ValueError(hook)
    try:
        # Edit hooks first: make_goldens.capture's hooks, registered after, see the edited values.
        return capture(model, ids)
    finally:
        for h in handles:
            h.remove()


def capture(model, ids):
    """Every site of a one-prompt run, as make_goldens.py captures them (without its check that
    the hooks agree with HF's hidden_states, which are taken before an edited layer's hook)."""
    store = {}
    handles = []
    layers = model.model.layers
    for l, layer in enumerate(layers):
        def pre(mod, args, kwargs, l=l):
            x = args[0] if args else kwargs["hidden_states"]
            store[f"blocks.{l}.hook_resid_pre"] = x.detach().clone()

        def post(mod, args, kwargs, out, l=l):
            x = out[0] if isinstance(out, tuple) else out
            store[f"blocks.{l}.hook_resid_post"] = x.detach().clone()

        def attn(mod, args, out, l=l):
            store[f"blocks.{l}.hook_attn_out"] = out[0].detach().clone()

        def mlp(mod, args, out, l=l):
            store[f"blocks.{l}.hook_mlp_out"] = out.detach().clone()

        handles.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(layer.register_forward_hook(post, with_kwargs=True))
        handles.append(layer.self_attn.register_forward_hook(attn))
        handles.append(layer.mlp.register_forward_hook(mlp))
    handles.append(
        model.model.norm.register_forward_hook(
            lambda m, a, o: store.__setitem__("ln_final", o.detach().clone())
        )
    )
    try:
        with torch.no_grad():
            out = model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    for l in range(len(layers)):
        store[f"blocks.{l}.hook_resid_mid"] = (
            store[f"blocks.{l}.hook_resid_pre"] + store[f"blocks.{l}.hook_attn_out"]
        )
    store["logits"] = out.logits.detach().clone()
    return store


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for m, name in enumerate(MODELS):
        d = os.path.join(HERE, "models", name)
        golden = json.load(open(os.path.join(d, "golden.json")))
        model = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        n_layers = model.config.num_hidden_layers
        prompts = golden["prompts"]
        target = torch.tensor([prompts[0]])
        source = capture(model, torch.tensor([prompts[1]]))
        gen = torch.Generator().manual_seed(4000 + m)
        tensors, cases = {}, {}
        for c, (case, (op, hook, layers, positions, alpha)) in enumerate(CASES.items()):
            layers = list(range(n_layers)) if layers == "every" else layers
            vector = torch.randn(model.config.hidden_size, generator=gen)
            ALPHA[0] = alpha or 0.0
            store = run_case(model, target, op, hook, layers, positions, vector, source)
            for key, value in store.items():
                tensors[f"{case}.{key}"] = value[0].contiguous()
            if op in ("add", "ablate"):
                tensors[f"vector.{case}"] = vector.contiguous()
            cases[case] = {
                "op": op,
                "hook": hook,
                "layers": layers,
                "positions": positions,
                "alpha": alpha,
                "target": 0,
                "source": 1 if op == "patch" else None,
            }
        save_file(tensors, os.path.join(d, "interventions.safetensors"))
        with open(os.path.join(d, "interventions.json"), "w") as f:
            json.dump(
                {
                    "cases": cases,
                    "transformers": transformers.__version__,
                    "torch": torch.__version__,
                },
                f,
                indent=1,
            )
        print(f"{name}: {len(cases)} cases")


if __name__ == "__main__":
    main()
