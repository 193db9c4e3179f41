#!/usr/bin/env python3
"""Writes the golden files the Rust acceptance tests read (tests/golden/*.json).

Rerun from anywhere:  python3 crates/tell-probe/tests/reference/make_golden.py
Needs numpy, scipy, scikit-learn. Data are generated here (seeded) and stored with the
expected values, so the Rust side needs no Python.
"""
import json
import pathlib

import numpy as np
import sklearn
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

OUT = pathlib.Path(__file__).resolve().parent.parent / "golden"
OUT.mkdir(exist_ok=True)


def quantize(a):
    """Rounds to 3 decimals and goes decimal -> f64 -> f32, the path Rust's parser takes, so both
    sides see bit-identical f32 features while the JSON stays small."""
    return np.round(np.asarray(a, dtype=np.float64), 3).astype(np.float32)


def f32list(a):
    return [round(float(v), 3) for v in np.asarray(a).ravel()]


def auroc_cases():
    rng = np.random.default_rng(7)
    cases = []
    for n, levels in [(50, 5), (200, 20), (1000, 7), (333, 1000), (40, 2)]:
        scores = rng.integers(0, levels, size=n).astype(np.float64) / 4.0  # many ties
        labels = rng.random(n) < 0.4
        labels[0], labels[1] = True, False
        cases.append({
            "scores": scores.tolist(),
            "labels": labels.astype(int).tolist(),
            "auroc": float(roc_auc_score(labels, scores)),
        })
    # Continuous scores too (no ties).
    s = rng.normal(size=500)
    y = (s + rng.normal(size=500)) > 0.3
    cases.append({"scores": s.tolist(), "labels": y.astype(int).tolist(),
                  "auroc": float(roc_auc_score(y, s))})
    return {"sklearn": sklearn.__version__, "cases": cases}


def synth(rng, n, d, signal):
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = rng.random(n) < 0.45
    cov_mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features
    z = rng.normal(size=(n, d)) @ (np.eye(d) + 0.5 * cov_mix)
    x = z + np.outer(np.where(y, 0.5, -0.5) * signal, u)
    x = x * rng.uniform(0.5, 3.0, size=d) + rng.normal(scale=2.0, size=d)
    return quantize(x), y


def parity_cases():
    rng = np.random.default_rng(11)
    cases = []
    for name, n_train, n_test, d, signal, lam in [
        ("n_gt_d", 240, 120, 30, 1.5, 1e-2),
        ("n_lt_d", 100, 80, 150, 3.0, 5e-2),
        ("weak_l2", 300, 100, 20, 1.0, 1e-4),
    ]:
        x, y = synth(rng, n_train + n_test, d, signal)
        xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
        sc = StandardScaler().fit(xtr.astype(np.float64))
        str_, ste = sc.transform(xtr.astype(np.float64)), sc.transform(xte.astype(np.float64))
        # Our objective: mean log-loss + lam/2 |w|^2  <=>  sklearn C = 1 / (lam * n_train).
        C = 1.0 / (lam * n_train)
        lr = LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=100000).fit(str_, ytr)
        test_scores = lr.decision_function(ste)
        # LDA reference: pooled class-centred standardised rows, Ledoit-Wolf shrinkage.
        mp, mn = str_[ytr].mean(0), str_[~ytr].mean(0)
        xc = str_ - np.where(ytr[:, None], mp, mn)
        s = ledoit_wolf_shrinkage(xc, assume_centered=True)
        emp = xc.T @ xc / n_train
        mu = np.trace(emp) / d
        sigma = (1 - s) * emp + s * mu * np.eye(d)
        w_lda = np.linalg.solve(sigma, mp - mn)
        cases.append({
            "name": name, "d": d, "lambda": lam, "C": C,
            "x_train": f32list(xtr), "y_train": ytr.astype(int).tolist(),
            "x_test": f32list(xte), "y_test": yte.astype(int).tolist(),
            "coef": lr.coef_.ravel().tolist(), "n_iter": int(lr.n_iter_[0]), "intercept": float(lr.intercept_[0]),
            "test_auroc": float(roc_auc_score(yte, test_scores)),
            "lda_shrinkage": float(s), "lda_direction": w_lda.tolist(),
            "diffmean_direction": (mp - mn).tolist(),
        })
    return {"sklearn": sklearn.__version__, "cases": cases}


if __name__ == "__main__":
    (OUT / "auroc_ties.json").write_text(json.dumps(auroc_cases()))
    (OUT / "logistic_parity.json").write_text(json.dumps(parity_cases()))
    print("wrote", sorted(p.name for p in OUT.iterdir()))
