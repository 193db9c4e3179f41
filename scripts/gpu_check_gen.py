"""Generation and the one-pass run in the device check (issue 16); used by gpu_check.py.

- parity: greedy continuations of 8 token prompts (32 new tokens) by `tell generate` against
  transformers' `generate` on the same checkpoint. f32 (TF32 off) must match token for token; in
  bf16 each prompt's first divergence is reported with transformers' logit margin there (random
  weights make near-ties likely).
- speed: new tokens/s with 512-token prompts and 128 new tokens at batch 1 and 32, tell against
  transformers' `generate` in the same run, and the fraction of the memory-bandwidth limit (one
  decoding step reads every weight once: steps/s <= bandwidth / weight bytes).
- end to end: `tell run` of the alignment-faking suite with `--device cuda --limit L`; wall time,
  new tokens/s and device memory, and the time of `--limit 100` extrapolated from throughput.

Random-weight checkpoints get the LLaMA 3 tokenizer (scripts/fetch-assets.sh; scripts/gpu-pack.sh
carries it to the GPU machine) so that `tell generate` can decode and `tell run` can render text.
"""

import json
import shutil
import time
from pathlib import Path

import numpy as np

# H200 HBM3e: 4.8 TB/s (NVIDIA's data sheet).
HBM_BYTES_PER_S = 4.8e12
PARITY_NEW = 32
SPEED = dict(length=512, new=128, batches=(1, 32))
SPEED_SMALL = dict(length=64, new=16, batches=(1, 4))


def tokenizer_dir(repo):
    for d in (repo / "target/gpu/llama3-tokenizer", repo / "checkpoints/fetched/llama3-tokenizer"):
        if (d / "tokenizer.json").is_file():
            return d
    return None


def add_tokenizer(c, ckpt):
    """Copies the LLaMA 3 tokenizer into a checkpoint directory; False when there is none."""
    src = tokenizer_dir(Path(__file__).resolve().parent.parent)
    if src is None:
        c.report.emit(step="tokenizer", skipped="no LLaMA 3 tokenizer: run scripts/fetch-assets.sh "
                      "(or scripts/gpu-pack.sh, which carries it)")
        return False
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / f, Path(ckpt) / f)
    return True


def tell_generate(c, name, ckpt, prompts, new, batch, dtype):
    """Runs `tell generate` on token prompts; returns (per-prompt tokens, seconds of generation)."""
    pf = c.prompts_file(c.work / f"{name}.jsonl", prompts)
    out = c.work / f"{name}-responses.jsonl"
    res = c.tell_run(name, ["generate", ckpt, "--prompts", pf, "--out", out, "--max-new-tokens", new,
                            "--batch-size", batch] + c.device_args(dtype))
    tokens = [json.loads(line)["response_tokens"] for line in open(out)]
    # "N responses, M new tokens in S s -> FILE": S excludes loading the model.
    secs = None
    for line in res["stderr"].splitlines():
        if " new tokens in " in line:
            secs = float(line.split(" new tokens in ")[1].split(" s")[0])
    return tokens, secs, res


def hf_generate(c, model, prompts, new, scores=False, exact_length=False):
    """transformers' greedy `generate`, prompt by prompt (no padding) or as one batch of equal
    lengths; returns (tokens per prompt, per-prompt step scores or None, seconds)."""
    torch = c.torch()
    dev = next(model.parameters()).device
    kw = dict(max_new_tokens=new, do_sample=False, pad_token_id=0)
    if exact_length:
        kw["min_new_tokens"] = new
    out, all_scores = [], []
    sync = torch.cuda.synchronize if c.gpu else (lambda: None)
    with torch.inference_mode():
        sync()
        start = time.perf_counter()
        if exact_length:
            ids = torch.tensor(prompts, device=dev)
            g = model.generate(ids, **kw)
            out = [row[len(prompts[0]):].tolist() for row in g]
        else:
            for p in prompts:
                ids = torch.tensor([p], device=dev)
                g = model.generate(ids, output_scores=scores, return_dict_in_generate=True, **kw)
                out.append(g.sequences[0, len(p):].tolist())
                if scores:
                    all_scores.append([s[0].float().cpu().numpy() for s in g.scores])
        sync()
        secs = time.perf_counter() - start
    return out, (all_scores if scores else None), secs


def parity(c, label, ckpt, model, prompts, kind):
    """Greedy continuations, tell against transformers (`kind` f32 or bf16)."""
    tell_tokens, _, _ = tell_generate(c, f"generate-{label}-{kind}", ckpt, prompts, PARITY_NEW, 8, kind)
    hf_tokens, hf_scores, _ = hf_generate(c, model, prompts, PARITY_NEW, scores=True)
    equal = 0
    for i, (t, h) in enumerate(zip(tell_tokens, hf_tokens)):
        first = next((k for k in range(min(len(t), len(h))) if t[k] != h[k]), None)
        if first is None and len(t) != len(h):
            first = min(len(t), len(h))
        margin = None
        if first is not None and first < len(hf_scores[i]):
            s = np.sort(hf_scores[i][first])
            margin = float(s[-1] - s[-2])
        equal += first is None
        c.report.emit(step="generate-parity", model=label, dtype=kind, prompt=i, prompt_tokens=len(prompts[i]),
                      first_divergence=first, hf_margin_there=margin, tell=t, transformers=h)
    ok = equal == len(prompts) if kind == "f32" else None
    if kind == "f32" and not ok:
        c.report.parity_failed = True
    c.report.row(f"greedy {PARITY_NEW} new tokens, {kind} ({label})", f"{equal}/{len(prompts)} equal",
                 f"{len(prompts)}/{len(prompts)} equal" if kind == "f32" else "report divergences", ok)


def speed(c, label, ckpt, model, vocab, small):
    """New tokens/s, tell against transformers, and the fraction of the bandwidth limit."""
    shape = SPEED_SMALL if small else SPEED
    rng = np.random.default_rng(3)
    weight_bytes = sum(f.stat().st_size for f in Path(ckpt).glob("*.safetensors"))
    limit_steps = HBM_BYTES_PER_S / weight_bytes
    for batch in shape["batches"]:
        if c.left() < 60:
            c.report.row(f"generate {batch}x{shape['length']}+{shape['new']} ({label})", "skipped: budget", "-", None)
            continue
        prompts = [rng.integers(0, vocab, shape["length"]).tolist() for _ in range(batch)]
        hf_generate(c, model, [p[:8] for p in prompts], 2, exact_length=True)  # warm-up
        _, hf_secs = hf_generate(c, model, prompts, shape["new"], exact_length=True)[::2]
        hf_rate = batch * shape["new"] / hf_secs
        tokens, secs, res = tell_generate(c, f"generate-speed-{label}-{batch}", ckpt, prompts, shape["new"], batch,
                                          "bf16" if c.gpu else "f32")
        new = sum(len(t) for t in tokens)
        rate = new / secs if secs else 0.0
        steps = max(len(t) for t in tokens) / secs if secs else 0.0
        c.report.emit(step="generate-speed", model=label, batch=batch, length=shape["length"], new=shape["new"],
                      tell_new_tokens=new, tell_seconds=secs, tell_tokens_per_s=rate,
                      transformers_seconds=hf_secs, transformers_tokens_per_s=hf_rate,
                      ratio=rate / hf_rate if hf_rate else None, tell_steps_per_s=steps,
                      bandwidth_limit_steps_per_s=limit_steps if c.gpu else None,
                      bandwidth_fraction=steps / limit_steps if c.gpu else None,
                      gpu_mib=res["gpu_mib"], rss_mib=res["rss_mib"])
        frac = f", {steps / limit_steps:.0%} of the bandwidth limit" if c.gpu else ""
        c.report.row(f"generate {batch}x{shape['length']}+{shape['new']} new tok/s ({label})",
                     f"{rate:.0f} vs {hf_rate:.0f} = {rate / hf_rate:.2f}x{frac}", ">= 2x", rate >= 2 * hf_rate)


def end_to_end(c, label, ckpt, small):
    """`tell run` of the alignment-faking suite on the device; extrapolated to --limit 100."""
    repo = Path(__file__).resolve().parent.parent
    datasets = repo / "checkpoints/fetched/datasets"
    packed = repo / "target/gpu/datasets"
    if not datasets.exists() and packed.exists():
        datasets.parent.mkdir(parents=True, exist_ok=True)
        datasets.symlink_to(packed)
    if not (datasets / "adv_bench.prompt").is_file():
        c.report.emit(step="run", skipped="no datasets: run scripts/fetch-assets.sh (gpu-pack.sh carries them)")
        c.report.row(f"tell run --limit ({label})", "skipped: no datasets", "-", None)
        return
    limit = 1 if small else 2
    new = 16 if small else 1024
    out = c.work / f"run-{label}"
    args = ["run", repo / "probes/alignment-faking/suite.toml", "--model", ckpt, "--out", out, "--limit", limit,
            "--batch-size", 4 if small else 32, "--force"]
    if small:
        args += ["--max-new-tokens", new]
    res = c.tell_run(f"run-{label}", args + c.device_args("bf16" if c.gpu else "f32"))
    prompts = sum(1 for _ in open(out / "prompts.jsonl"))
    tokens = sum(len(json.loads(line)["response_tokens"]) for line in open(out / "responses.jsonl"))
    # The seed protocol at --limit 100: 100 harmful + 100 benign queries x 7 conditions x 2 tiers.
    full = 100 * prompts / limit
    gen = None
    for line in res["stderr"].splitlines():
        if "generate:" in line and "new tokens ->" in line and line.strip().startswith("["):
            gen = float(line.split("s]")[0].strip("[ "))
    per_prompt = res["seconds"] / prompts
    c.report.emit(step="run", model=label, limit=limit, prompts=prompts, new_tokens=tokens,
                  seconds=res["seconds"], tokens_per_s=tokens / res["seconds"], gpu_mib=res["gpu_mib"],
                  rss_mib=res["rss_mib"], extrapolated_prompts=full,
                  extrapolated_seconds=per_prompt * full, generate_done_at=gen)
    c.report.row(f"tell run --limit {limit} ({label}): {prompts} prompts, {tokens} new tokens",
                 f"{res['seconds']:.0f} s, {tokens / res['seconds']:.0f} tok/s; --limit 100 ~ {per_prompt * full / 60:.0f} min",
                 "report", None)
