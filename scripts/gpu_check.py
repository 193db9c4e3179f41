#!/usr/bin/env python3
"""The device check of `tell` on a GPU (issue 15): parity and speed against transformers.

    scripts/gpu-check.sh PATH/TO/tell [OUT]          # what to run (wraps this file)
    python3 scripts/gpu_check.py --tell PATH/TO/tell --out OUT [--device cuda|cpu] [--small]

What it does, in this order (each step prints JSON lines as it goes; the table comes last):
  1. tiny checkpoint (LLaMA-3 layout, llama3 rope scaling, 3 layers, saved in f32 by transformers):
     parity of `tell --compute-dtype bf16` and `f32` against transformers in the same types;
  2. a seeded random-weight checkpoint with LLaMA-3-8B-Instruct's configuration in bf16, made by
     transformers on the GPU and saved (16 GB, sharded): 8 prompts of 16-512 tokens, every layer's
     `resid_post` at every position and the logits, `tell capture --compute-dtype bf16` against
     transformers bf16, then `--compute-dtype f32` against transformers f32 with TF32 off;
  3. tuning persistence: the same one-batch capture (8 x 512) twice; the second's loop time;
  4. prefill with all-layer last-token `resid_post` capture into a store at 1x512, 8x512, 32x512
     and 8x2048, tell and transformers by turns: a warm-up window of 8 batches, then ROUNDS timed
     windows of 8 batches; the best window of each side (tell's windows are timed by the store's
     shards, one per window);
  5. all-position all-layer capture into a bf16 store at 8x512 against transformers' host copy of
     all hidden states (windows of 2 batches, as tell sorts them);
  6. peak device memory (nvidia-smi, device-wide used minus what was used before tell started)
     and host peak RSS (VmHWM of /proc/PID/status) of every tell run.

Exit status: 0 when parity passes (bf16: `resid_post` cosine >= 0.999 at every layer and the same
top-1 as transformers on every prompt whose top-1/top-2 logit margin exceeds 0.05; f32: maximum
error relative to the largest reference value within 1e-4 on the tiny checkpoint and 1e-3 on the
8B shape, same top-1 on all prompts); 1 when parity fails; 2 when a step could not run. Speed,
memory and tuning are reported against the issue's targets (PASS/MISS) without changing the exit
status.

`--device cpu --small` (`DEVICE=cpu SMALL=1 scripts/gpu-check.sh target/release/tell`) runs every
step on the CPU with the tiny checkpoint and small shapes (tell runs f32 only on the CPU, so the
"bf16" steps compare f32 with f32): it proves the plumbing where there is no GPU.

The speed steps run in order of the issue's targets (8x512 last-token, 8x512 all positions, then
1x512, 32x512, 8x2048, then 8x512 without burn-fusion, TELL_CUDA_FUSION=0, tell only) and stop
at BUDGET seconds from the start (default 450): a tell run is killed when the budget is spent and
the windows its store completed are used; steps not reached are reported as skipped.

With CUDA_TESTS=PATH (the executable of `cargo test --release -p tell-llama --features cuda --test
cuda --no-run`), those GPU tests run first (tell on the GPU against tell on the CPU, the unfused
backend, every product layout, decoding with the KV cache); a failure counts as a parity failure.

Generation (issue 16, scripts/gpu_check_gen.py): greedy parity with transformers' generate (f32
token for token, bf16 first divergences), new tokens/s at batch 1 and 32, and `tell run` of the
alignment-faking suite end to end.

Environment: ROUNDS (timed windows per side, default 3), SKIP (comma list of tests, tiny, big,
f32, generate, tuning, speed, allpos, genspeed, run, unfused), BUDGET (seconds, default 450), WORK (scratch directory for
checkpoints and stores, default /tmp/tell-gpu-check; nothing big is written under OUT),
TELL_TIMEOUT (seconds per tell run, default 600). Everything large is deleted at the end unless
KEEP=1.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import gpu_check_gen as gen

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
# LLaMA-3-8B-Instruct's architecture with LLaMA 3.1's rope scaling and context (config.json of
# meta-llama/Llama-3.1-8B-Instruct).
LLAMA3_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=128000,
    eos_token_id=[128001, 128009],
)
TINY = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=3,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
)
PROMPT_LENS = [16, 40, 80, 128, 200, 300, 420, 512]
SPEED_SHAPES = [(1, 512), (8, 512), (32, 512), (8, 2048)]
SPEED_SHAPES_SMALL = [(1, 64), (4, 64), (8, 64), (2, 256)]
ALLPOS = (8, 512)
ALLPOS_SMALL = (4, 64)
BF16_COS = 0.999
MARGIN = 0.05
F32_TOL = {"tiny": 1e-4, "8b": 1e-3}
SPEEDUP_LAST = 1.15
SPEEDUP_ALLPOS = 2.0

CAPTURED = re.compile(r"captured (\d+) records \((\d+) tokens\) in ([\d.]+) s: ([\d.]+) tokens/s")


class Report:
    """JSON lines on stdout and in OUT/results.jsonl; the table rows for the end."""

    def __init__(self, out):
        self.out = out
        self.file = open(out / "results.jsonl", "w")
        self.rows = []
        self.parity_failed = False
        self.broken = False

    def emit(self, **rec):
        line = json.dumps(rec, default=float)
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def row(self, check, value, target, ok):
        status = "PASS" if ok else ("MISS" if ok is False else "n/a")
        self.rows.append((check, value, target, status))

    def table(self):
        w = [max(len(str(r[i])) for r in self.rows + [("check", "value", "target", "status")]) for i in range(4)]
        lines = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(["check", "value", "target", "status"])) + " |"]
        lines.append("|" + "|".join("-" * (x + 2) for x in w) + "|")
        for r in self.rows:
            lines.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |")
        return "\n".join(lines)


class Monitor(threading.Thread):
    """Peak host RSS (VmHWM) of a process, and peak device memory used while it runs."""

    def __init__(self, pid, gpu, exe):
        super().__init__(daemon=True)
        self.pid, self.gpu, self.exe = pid, gpu, exe
        self.rss_kb = 0
        self.gpu_base = gpu_used_mib() if gpu else None
        self.gpu_peak = self.gpu_base
        self.done = threading.Event()

    def run(self):
        while True:
            try:
                # Only once the child runs tell: before its exec it still shows this harness.
                if os.path.realpath(f"/proc/{self.pid}/exe") != self.exe:
                    raise OSError("not exec'd yet")
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.rss_kb = max(self.rss_kb, int(line.split()[1]))
            except OSError:
                pass
            if self.gpu:
                used = gpu_used_mib()
                if used is not None and (self.gpu_peak is None or used > self.gpu_peak):
                    self.gpu_peak = used
            if self.done.wait(0.2):
                break

    def gpu_mib(self):
        if self.gpu_base is None or self.gpu_peak is None:
            return None
        return self.gpu_peak - self.gpu_base


def gpu_used_mib():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip().splitlines()
        return int(out[0]) if out else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


class Check:
    def __init__(self, a):
        self.a = a
        self.tell = str(Path(a.tell).resolve())
        self.out = Path(a.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "logs").mkdir(exist_ok=True)
        self.work = Path(os.environ.get("WORK", "/tmp/tell-gpu-check")).resolve()
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        self.gpu = a.device == "cuda"
        self.rounds = int(os.environ.get("ROUNDS", "3"))
        self.skip = set(filter(None, os.environ.get("SKIP", "").split(",")))
        self.timeout = int(os.environ.get("TELL_TIMEOUT", "600"))
        self.deadline = time.monotonic() + float(os.environ.get("BUDGET", "450"))
        self.report = Report(self.out)
        self.env = dict(os.environ)
        # A fresh tuning cache, so that the tuning check sees a first and a second run.
        self.env["TELL_CUBECL_CACHE"] = str(self.work / "cubecl-cache")
        self.runs = 0

    # ---- tell ---------------------------------------------------------------------------------

    def left(self):
        return self.deadline - time.monotonic()

    def tell_run(self, name, args, check=True, env=None):
        """Runs tell; returns (stdout, stderr, seconds, peak RSS MiB, peak device MiB)."""
        self.runs += 1
        cmd = [self.tell] + [str(x) for x in args]
        timeout = max(30.0, min(self.timeout, self.left()))
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(self.env, **(env or {})))
        mon = Monitor(p.pid, self.gpu, os.path.realpath(self.tell))
        mon.start()
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, stderr = p.communicate()
            stderr += f"\n[gpu_check] killed after {timeout:.0f} s (budget)"
        mon.done.set()
        mon.join()
        secs = time.perf_counter() - start
        log = self.out / "logs" / f"{self.runs:02d}-{name}.log"
        log.write_text(f"$ {' '.join(cmd)}\n[exit {p.returncode}, {secs:.1f} s]\n--- stderr\n{stderr[-20000:]}\n--- stdout\n{stdout[-5000:]}\n")
        # VmHWM polled every 0.2 s (the child's own: ru_maxrss would count the forked harness);
        # a run shorter than a poll reads 0.
        res = dict(stdout=stdout, stderr=stderr, seconds=secs, rss_mib=mon.rss_kb / 1024, gpu_mib=mon.gpu_mib(), rc=p.returncode)
        if p.returncode != 0 and check:
            raise RuntimeError(f"tell {name} failed (exit {p.returncode}): {stderr.strip()[-2000:]}")
        return res

    def device_args(self, dtype):
        if not self.gpu:
            return ["--device", "cpu"]
        return ["--device", "cuda", "--compute-dtype", dtype]

    def capture(self, name, ckpt, prompts, store, sites, positions, batch, dtype, store_dtype, shard_records=None,
                check=True, env=None):
        args = ["capture", ckpt, "--prompts", prompts, "--out", store, "--sites", sites, "--layers", "all",
                "--positions", positions, "--batch-size", batch, "--dtype", store_dtype, "--force"]
        if shard_records:
            args += ["--shard-records", shard_records]
        res = self.tell_run(name, args + self.device_args(dtype), check=check, env=env)
        m = CAPTURED.search(res["stderr"])
        res["loop_seconds"] = float(m.group(3)) if m else None
        res["tokens_per_s"] = float(m.group(4)) if m else None
        return res

    def loadable(self, ckpt):
        """`tell inspect` on a checkpoint; config fields this tell does not know are dropped."""
        dropped = []
        for _ in range(20):
            res = self.tell_run("inspect", ["inspect", ckpt, "--json"], check=False)
            m = re.search(r"unknown field `([^`]+)`", res["stderr"])
            if res["rc"] == 0:
                break
            if not m:
                raise RuntimeError(f"tell cannot read {ckpt}: {res['stderr'].strip()}")
            cfg_path = Path(ckpt) / "config.json"
            cfg = json.loads(cfg_path.read_text())
            cfg.pop(m.group(1), None)
            dropped.append(m.group(1))
            cfg_path.write_text(json.dumps(cfg, indent=2))
        if dropped:
            self.report.emit(step="config", checkpoint=str(ckpt), dropped_fields=dropped,
                             note="fields of this transformers' config.json that tell does not read")

    # ---- transformers -------------------------------------------------------------------------

    def torch(self):
        import torch

        if not self.gpu:
            torch.set_num_threads(os.cpu_count() or 1)
        return torch

    def make_checkpoint(self, name, spec, dtype, seed):
        torch = self.torch()
        from transformers import AutoModelForCausalLM, LlamaConfig

        try:
            cfg = LlamaConfig(**spec, rope_parameters=dict(LLAMA3_ROPE))
        except TypeError:  # transformers 4
            rope = dict(LLAMA3_ROPE)
            theta = rope.pop("rope_theta")
            cfg = LlamaConfig(**spec, rope_theta=theta, rope_scaling=rope)
        torch.manual_seed(seed)
        dev = "cuda" if self.gpu else "cpu"
        start = time.perf_counter()
        with torch.device(dev):
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        model.eval()
        path = self.work / name
        model.save_pretrained(path, max_shard_size="4GB")
        self.report.emit(step="checkpoint", name=name, dtype=str(dtype), seconds=round(time.perf_counter() - start, 1),
                         parameters=sum(p.numel() for p in model.parameters()),
                         bytes=sum(f.stat().st_size for f in path.glob("*.safetensors")))
        self.loadable(path)
        return path, model

    def hf_states(self, model, prompts):
        """Per prompt (batch 1, no padding): every layer's output at every position and the
        logits at the last position, as float64 numpy."""
        torch = self.torch()
        layers = model.model.layers
        seen = []
        hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o)) for layer in layers]
        dev = next(model.parameters()).device
        out = []
        try:
            with torch.inference_mode():
                for p in prompts:
                    seen.clear()
                    ids = torch.tensor([p], device=dev)
                    logits = model(input_ids=ids, use_cache=False).logits[0, -1]
                    out.append(([s[0].double().cpu().numpy() for s in seen], logits.double().cpu().numpy()))
        finally:
            for h in hooks:
                h.remove()
        return out

    # ---- parity -------------------------------------------------------------------------------

    def prompts_file(self, path, prompts):
        with open(path, "w") as f:
            for i, p in enumerate(prompts):
                f.write(json.dumps({"id": f"p{i}", "tokens": [int(t) for t in p]}) + "\n")
        return path

    def tell_states(self, name, ckpt, prompts, dtype, layers):
        pf = self.prompts_file(self.work / f"{name}.jsonl", prompts)
        store, npy = self.work / f"{name}-store", self.work / f"{name}-npy"
        # ln_final too: a tell that computes the final norm only for ln_final (before the fix of
        # `--sites logits` alone) still gives the logits then.
        res = self.capture(name, ckpt, pf, store, "resid_post,ln_final,logits", "all", 8, dtype, "f32")
        self.tell_run(f"{name}-export", ["store", "export", store, "--format", "npy", "--out", npy])
        offsets = np.load(npy / "offsets.npy")
        resid = []
        for l in range(layers):
            (f,) = glob.glob(str(npy / f"blocks.{l}.*resid_post*.npy"))
            resid.append(np.load(f, mmap_mode="r"))
        (lf,) = [f for f in glob.glob(str(npy / "*logits*.npy"))]
        logits = np.load(lf, mmap_mode="r")
        states = []
        for i in range(len(prompts)):
            a, b = int(offsets[i]), int(offsets[i + 1])
            states.append(([np.asarray(r[a:b], dtype=np.float64) for r in resid], np.asarray(logits[b - 1], dtype=np.float64)))
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(npy, ignore_errors=True)
        return states, res

    @staticmethod
    def compare(a, b):
        diff = np.abs(a - b)
        ref = np.abs(b)
        cos = float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-300))
        return cos, float(diff.max() / max(ref.max(), 1e-300)), float(diff.mean() / max(ref.mean(), 1e-300))

    def parity(self, label, ckpt, model, prompts, tell_dtype, kind):
        """kind: 'bf16' (cosine + top-1 where the margin is clear) or 'f32' (relative error +
        every top-1), tolerance by checkpoint."""
        layers = len(model.model.layers)
        start = time.perf_counter()
        hf = self.hf_states(model, prompts)
        hf_secs = time.perf_counter() - start
        tl, res = self.tell_states(f"parity-{label}-{tell_dtype}", ckpt, prompts, tell_dtype, layers)
        worst = dict(cos=1.0, max_rel=0.0)
        per_layer = []
        for l in range(layers):
            cs, mx, mn = zip(*(self.compare(tl[i][0][l], hf[i][0][l]) for i in range(len(prompts))))
            per_layer.append(dict(layer=l, cos_min=min(cs), max_rel=max(mx), mean_rel=float(np.mean(mn))))
            worst["cos"] = min(worst["cos"], min(cs))
            worst["max_rel"] = max(worst["max_rel"], max(mx))
        prompts_out = []
        for i, p in enumerate(prompts):
            t_last, h_last = tl[i][1], hf[i][1]
            cos, mx, mn = self.compare(t_last, h_last)
            order = np.argsort(-h_last)
            margin = float(h_last[order[0]] - h_last[order[1]])
            prompts_out.append(dict(prompt=i, tokens=len(p), logits_cos=cos, logits_max_rel=mx, logits_mean_rel=mn,
                                    tell_top1=int(np.argmax(t_last)), hf_top1=int(order[0]), hf_margin=margin,
                                    same_top1=bool(np.argmax(t_last) == order[0])))
            worst["max_rel"] = max(worst["max_rel"], mx) if kind == "f32" else worst["max_rel"]
        if kind == "bf16":
            top1_ok = all(p["same_top1"] for p in prompts_out if p["hf_margin"] > MARGIN)
            ok = worst["cos"] >= BF16_COS and top1_ok
            target = f"cos >= {BF16_COS} every layer; same top-1 where margin > {MARGIN}"
            value = f"min cos {worst['cos']:.6f}; top-1 {sum(p['same_top1'] for p in prompts_out)}/{len(prompts_out)} (clear margins: {sum(p['hf_margin'] > MARGIN for p in prompts_out)})"
        else:
            tol = F32_TOL[label]
            top1_ok = all(p["same_top1"] for p in prompts_out)
            ok = worst["max_rel"] <= tol and top1_ok
            target = f"max rel err <= {tol:g}; same top-1 on all"
            value = f"max rel {worst['max_rel']:.2e}; top-1 {sum(p['same_top1'] for p in prompts_out)}/{len(prompts_out)}"
        self.report.emit(step="parity", checkpoint=label, tell_dtype=tell_dtype, reference=str(next(model.parameters()).dtype),
                         ok=ok, worst=worst, layers=per_layer, prompts=prompts_out,
                         tell_seconds=round(res["seconds"], 2), tell_loop_seconds=res["loop_seconds"],
                         tell_peak_rss_mib=round(res["rss_mib"]), tell_peak_gpu_mib=res["gpu_mib"],
                         hf_seconds=round(hf_secs, 2))
        ref = str(next(model.parameters()).dtype).replace("torch.", "")
        self.report.row(f"parity {label}: tell {tell_dtype} vs transformers {ref}", value, target, ok)
        if not ok:
            self.report.parity_failed = True
        return res

    # ---- speed --------------------------------------------------------------------------------

    def random_prompts(self, n, length, vocab, seed):
        rng = np.random.default_rng(seed)
        return rng.integers(0, vocab, size=(n, length)).tolist()

    def tell_windows(self, name, ckpt, prompts, batch, window_batches, positions, store_dtype, dtype, env=None):
        """A capture whose windows each end with one shard: the windows' times from the shards'
        modification times (the first window, which pays the warm-up, is not counted). A run
        stopped by the budget counts the windows it completed."""
        pf = self.prompts_file(self.work / f"{name}.jsonl", prompts)
        store = self.work / f"{name}-store"
        res = self.capture(name, ckpt, pf, store, "resid_post", positions, batch, dtype, store_dtype,
                           shard_records=batch * window_batches, check=False, env=env)
        times = sorted(os.stat(f).st_mtime_ns for f in glob.glob(str(store / "shard-*.safetensors")))
        res["windows"] = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
        shutil.rmtree(store, ignore_errors=True)
        if not res["windows"]:
            raise RuntimeError(f"tell {name}: no timed window (exit {res['rc']}, {len(times)} windows in "
                               f"{res['seconds']:.0f} s): {res['stderr'].strip()[-1500:]}")
        return res

    def hf_windows(self, model, prompts, batch, window_batches, all_positions):
        torch = self.torch()
        dev = next(model.parameters()).device
        ids = torch.tensor(prompts, device=dev)
        times = []
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        with torch.inference_mode():
            for w in range(0, len(prompts), batch * window_batches):
                if len(times) >= 2 and self.left() < 0:
                    break
                sync()
                start = time.perf_counter()
                for b in range(w, w + batch * window_batches, batch):
                    hs = model(input_ids=ids[b:b + batch], output_hidden_states=True, use_cache=False).hidden_states
                    if all_positions:
                        host = [h.to("cpu") for h in hs]
                    else:
                        host = torch.stack([h[:, -1] for h in hs[1:]]).float().cpu().numpy()
                    del hs, host
                sync()
                times.append(time.perf_counter() - start)
        return times[1:]

    def speed(self, label, ckpt, model, vocab, shapes, dtype, target_shape):
        for batch, length in shapes:
            if self.left() < 0:
                self.report.emit(step="prefill-last", batch=batch, length=length, skipped="budget spent")
                self.report.row(f"prefill+last capture {batch}x{length} ({label})", "skipped: budget", "-", None)
                continue
            windows = 1 + self.rounds
            prompts = self.random_prompts(batch * 8 * windows, length, vocab, seed=batch * 100000 + length)
            tokens = batch * 8 * length
            t = self.tell_windows(f"speed-{batch}x{length}", ckpt, prompts, batch, 8, "last", "f32", dtype)
            h = self.hf_windows(model, prompts, batch, 8, all_positions=False)
            t_best, h_best = min(t["windows"] or [float("nan")]), min(h or [float("nan")])
            t_tps, h_tps = tokens / t_best, tokens / h_best
            ratio = t_tps / h_tps
            self.report.emit(step="prefill-last", checkpoint=label, batch=batch, length=length, tokens_per_window=tokens,
                             tell_windows_s=t["windows"], hf_windows_s=h, tell_tokens_per_s=round(t_tps), hf_tokens_per_s=round(h_tps),
                             speedup=round(ratio, 3), tell_loop_seconds=t["loop_seconds"], tell_process_seconds=round(t["seconds"], 1),
                             tell_peak_rss_mib=round(t["rss_mib"]), tell_peak_gpu_mib=t["gpu_mib"])
            # The targets are set at 8 x 512 (4 x 64 in the small run).
            target = (batch, length) == target_shape
            self.report.row(f"prefill+last capture {batch}x{length} ({label})", f"tell {t_tps:,.0f} tok/s, hf {h_tps:,.0f} ({ratio:.2f}x)",
                            f">= {SPEEDUP_LAST}x" if target else "-", (ratio >= SPEEDUP_LAST) if target else None)
            if target:
                rss = t["rss_mib"]
                self.report.row(f"host peak RSS, {label} load + {batch}x{length} capture",
                                f"{rss:,.0f} MiB" if rss >= 1 else "not read (run shorter than a poll)", "< 4096 MiB",
                                (rss < 4096) if rss >= 1 else None)
                if t["gpu_mib"] is not None:
                    g = t["gpu_mib"]
                    self.report.row(f"device memory, {label} {batch}x{length}", f"{g:,.0f} MiB", "< 24576 MiB", g < 24576)

    def allpos(self, label, ckpt, model, vocab, shape, dtype):
        batch, length = shape
        windows = 1 + self.rounds
        prompts = self.random_prompts(batch * 2 * windows, length, vocab, seed=7)
        tokens = batch * 2 * length
        t = self.tell_windows(f"allpos-{batch}x{length}", ckpt, prompts, batch, 2, "all", "bf16", dtype)
        h = self.hf_windows(model, prompts, batch, 2, all_positions=True)
        t_tps, h_tps = tokens / min(t["windows"] or [float("nan")]), tokens / min(h or [float("nan")])
        ratio = t_tps / h_tps
        self.report.emit(step="capture-all-positions", checkpoint=label, batch=batch, length=length, store_dtype="bf16",
                         tell_windows_s=t["windows"], hf_windows_s=h, tell_tokens_per_s=round(t_tps), hf_tokens_per_s=round(h_tps),
                         speedup=round(ratio, 3), tell_peak_rss_mib=round(t["rss_mib"]), tell_peak_gpu_mib=t["gpu_mib"])
        self.report.row(f"all-position capture {batch}x{length} to bf16 store ({label})",
                        f"tell {t_tps:,.0f} tok/s, hf host copy {h_tps:,.0f} ({ratio:.2f}x)", f">= {SPEEDUP_ALLPOS}x", ratio >= SPEEDUP_ALLPOS)

    def unfused(self, label, ckpt, vocab, shape, dtype):
        """The same last-token capture on burn-cuda without burn-fusion (tell only)."""
        batch, length = shape
        prompts = self.random_prompts(batch * 8 * (1 + self.rounds), length, vocab, seed=batch * 100000 + length)
        t = self.tell_windows(f"unfused-{batch}x{length}", ckpt, prompts, batch, 8, "last", "f32", dtype,
                              env={"TELL_CUDA_FUSION": "0"})
        tps = batch * 8 * length / min(t["windows"])
        self.report.emit(step="prefill-last-unfused", checkpoint=label, batch=batch, length=length,
                         tell_windows_s=t["windows"], tell_tokens_per_s=round(tps), tell_peak_gpu_mib=t["gpu_mib"])
        self.report.row(f"prefill+last capture {batch}x{length}, TELL_CUDA_FUSION=0 ({label})", f"tell {tps:,.0f} tok/s", "-", None)

    def tuning(self, label, ckpt, vocab, shape, dtype):
        batch, length = shape
        prompts = self.random_prompts(batch, length, vocab, seed=3)
        pf = self.prompts_file(self.work / "tuning.jsonl", prompts)
        loops = []
        for r in range(2):
            res = self.capture(f"tuning-{r}", ckpt, pf, self.work / "tuning-store", "resid_post", "last", batch, dtype, "f32")
            loops.append(res["loop_seconds"])
        shutil.rmtree(self.work / "tuning-store", ignore_errors=True)
        self.report.emit(step="tuning-persists", checkpoint=label, batch=batch, length=length, first_batch_seconds=loops,
                         cache=self.env["TELL_CUBECL_CACHE"])
        second = loops[1] if loops[1] is not None else float("inf")
        self.report.row(f"second run's first batch {batch}x{length} ({label})", f"{second:.2f} s (first run {loops[0]})", "< 10 s", second < 10)

    # ---- the whole check ----------------------------------------------------------------------

    def environment(self):
        info = dict(step="environment", tell=self.tell, device=self.a.device, small=self.a.small, rounds=self.rounds)
        try:
            info["tell_version"] = subprocess.run([self.tell, "--version"], capture_output=True, text=True).stdout.strip()
            info["tell_bytes"] = os.path.getsize(self.tell)
        except OSError as e:
            info["tell_error"] = str(e)
        try:
            import torch
            import transformers

            info["torch"], info["transformers"] = torch.__version__, transformers.__version__
            if self.gpu:
                info["gpu"] = torch.cuda.get_device_name(0)
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            info["python_error"] = repr(e)
        if self.gpu:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True)
            info["nvidia_smi"] = smi.stdout.strip()
        self.report.emit(**info)

    def step(self, name, f):
        if name in self.skip:
            self.report.emit(step=name, skipped="SKIP")
            return None
        if self.left() < 0:
            self.report.emit(step=name, skipped="budget spent")
            self.report.row(f"step {name}", "skipped: budget spent", "-", None)
            return None
        try:
            return f()
        except Exception as e:  # noqa: BLE001 - one broken step must not hide the others
            self.report.broken = True
            self.report.emit(step=name, error=f"{type(e).__name__}: {e}")
            self.report.row(f"step {name}", "could not run", "-", False)
            return None

    def cuda_tests(self):
        exe = os.environ["CUDA_TESTS"]
        models = Path(__file__).resolve().parent.parent / "tests" / "parity" / "models"
        start = time.perf_counter()
        res = subprocess.run([exe, "--test-threads", "1", "--nocapture"], capture_output=True, text=True,
                             env=dict(self.env, TELL_TEST_MODELS=str(models)), timeout=max(60, self.left()))
        (self.out / "logs" / "cuda-tests.log").write_text(res.stdout[-20000:] + "\n--- stderr\n" + res.stderr[-20000:])
        passed = re.search(r"test result: (\w+)\. (\d+) passed; (\d+) failed", res.stdout)
        skipped = "skipped" in res.stdout + res.stderr
        ok = res.returncode == 0 and not skipped and passed is not None and int(passed.group(2)) > 0
        self.report.emit(step="cuda-tests", ok=ok, rc=res.returncode, skipped=skipped,
                         summary=passed.group(0) if passed else None, seconds=round(time.perf_counter() - start, 1))
        self.report.row("tests/cuda.rs on the GPU (vs the CPU)", passed.group(0) if passed else f"exit {res.returncode}",
                        "all pass, none skipped", ok)
        if not ok:
            self.report.parity_failed = True

    def run(self):
        self.environment()
        if os.environ.get("CUDA_TESTS"):
            self.step("tests", self.cuda_tests)
        torch = self.torch()
        # transformers' f32 references without TF32 (bf16 runs are not affected).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        half = torch.bfloat16 if self.gpu else torch.float32
        tell_half = "bf16" if self.gpu else "f32"
        dev = "cuda" if self.gpu else "cpu"
        rng = np.random.default_rng(0)

        def tiny():
            ckpt, model = self.make_checkpoint("tiny", TINY, torch.float32, seed=1)
            prompts = [rng.integers(0, TINY["vocab_size"], n).tolist() for n in PROMPT_LENS]
            model.to(dev)
            # f32 first: the bf16 comparison rounds the model's weights in place.
            self.parity("tiny", ckpt, model, prompts, "f32", "f32")
            self.parity("tiny", ckpt, model.to(half), prompts, tell_half, "bf16")
            return ckpt, model

        tiny_out = self.step("tiny", tiny)

        if self.a.small:
            if tiny_out is None:
                return
            ckpt, model = tiny_out
            label, vocab = "tiny", TINY["vocab_size"]
            model.to(half)
            shapes, allpos = SPEED_SHAPES_SMALL, ALLPOS_SMALL

            def tiny_generation():
                # The tokenizer's stop and text ids are LLaMA 3's: the tiny shape with its vocabulary.
                vocab3 = 128256
                gen_ckpt, gen_model = self.make_checkpoint("tiny-llama3-vocab", dict(TINY, vocab_size=vocab3),
                                                           torch.float32, seed=4)
                if not gen.add_tokenizer(self, gen_ckpt):
                    return
                gen_model.to(dev)
                gen_prompts = [rng.integers(0, vocab3, n).tolist() for n in PROMPT_LENS]
                self.step("generate", lambda: gen.parity(self, "tiny", gen_ckpt, gen_model, gen_prompts, "f32"))
                self.step("genspeed", lambda: gen.speed(self, "tiny", gen_ckpt, gen_model, vocab3, True))
                self.step("run", lambda: gen.end_to_end(self, "tiny", gen_ckpt, small=True))

            self.step("generation", tiny_generation)
        else:
            def big():
                return self.make_checkpoint("llama3-8b-random", LLAMA3_8B, torch.bfloat16, seed=2)

            made = self.step("big", big)
            if made is None:
                return
            ckpt, model = made
            label, vocab = "8b", LLAMA3_8B["vocab_size"]
            prompts = [rng.integers(0, vocab, n).tolist() for n in PROMPT_LENS]
            self.step("big", lambda: self.parity("8b", ckpt, model, prompts, "bf16", "bf16"))
            tokenizer = gen.add_tokenizer(self, ckpt)
            if tokenizer:
                self.step("generate", lambda: gen.parity(self, "8b", ckpt, model, prompts, "bf16"))

            def f32():
                model.float()
                try:
                    self.parity("8b", ckpt, model, prompts, "f32", "f32")
                    if tokenizer:
                        self.step("generate", lambda: gen.parity(self, "8b", ckpt, model, prompts, "f32"))
                finally:
                    model.to(torch.bfloat16)  # the same bf16 values: they came from bf16
                    if self.gpu:
                        torch.cuda.empty_cache()

            self.step("f32", f32)
            shapes, allpos = SPEED_SHAPES, ALLPOS

        # The targets first (8 x 512), then the other shapes while the budget lasts.
        target, others = shapes[1], [s for s in shapes if s != shapes[1]]
        self.step("tuning", lambda: self.tuning(label, ckpt, vocab, target, tell_half))
        self.step("speed", lambda: self.speed(label, ckpt, model, vocab, [target], tell_half, target))
        self.step("allpos", lambda: self.allpos(label, ckpt, model, vocab, allpos, tell_half))
        self.step("speed", lambda: self.speed(label, ckpt, model, vocab, others, tell_half, target))
        if not self.a.small and (Path(ckpt) / "tokenizer.json").is_file():
            self.step("genspeed", lambda: gen.speed(self, label, ckpt, model, vocab, False))
            self.step("run", lambda: gen.end_to_end(self, label, ckpt, small=False))
        if self.gpu:
            self.step("unfused", lambda: self.unfused(label, ckpt, vocab, target, tell_half))

    def finish(self):
        table = self.report.table()
        print("\n" + table, flush=True)
        (self.out / "summary.md").write_text(table + "\n")
        cache = self.work / "cubecl-cache"
        if cache.exists():
            size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
            if size < 16 << 20:
                shutil.copytree(cache, self.out / "cubecl-cache", dirs_exist_ok=True)
            self.report.emit(step="cubecl-cache", bytes=size, copied=size < 16 << 20)
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(self.work, ignore_errors=True)
        status = 2 if self.report.broken else (1 if self.report.parity_failed else 0)
        self.report.emit(step="done", exit=status, parity_failed=self.report.parity_failed, broken=self.report.broken)
        return status


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tell", required=True, help="the tell binary (built with --features cuda for a GPU)")
    p.add_argument("--out", required=True, help="where results.jsonl, summary.md and logs/ go")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--small", action="store_true", help="tiny checkpoint and small shapes only")
    a = p.parse_args()
    check = Check(a)
    start = time.perf_counter()
    try:
        check.run()
    except Exception as e:  # noqa: BLE001 - reported with whatever ran before it
        check.report.broken = True
        check.report.emit(step="check", error=f"{type(e).__name__}: {e}")
    check.report.emit(step="elapsed", seconds=round(time.perf_counter() - start, 1))
    sys.exit(check.finish())


if __name__ == "__main__":
    main()
