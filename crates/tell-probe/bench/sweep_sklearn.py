#!/usr/bin/env python3
"""scikit-learn side of the sweep benchmark: same data, same folds, same objective.

Usage: sweep_sklearn.py OUT_DIR LAYERS ROWS FEATURES L2 TOL
Reads OUT_DIR/{x.f32,labels.u8,folds.u8} written by the Rust bench, fits per layer and fold
StandardScaler (train fold) + LogisticRegression(lbfgs, C = 1/(L2 * n_train)), pools the
out-of-fold decision values, and writes OUT_DIR/sklearn.json.
"""
import json
import sys
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

out, layers, rows, d, tol = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[6])
# "cv": choose the L2 strength per outer fold from GRID by inner grouped 3-fold CV on the same inner
# splits tell uses (inner_folds.u8), fits warm-started from strong to weak, best mean inner AUROC.
cv_l2 = sys.argv[5] == "cv"
l2 = None if cv_l2 else float(sys.argv[5])
GRID = [10.0, 1.0, 1e-1, 1e-2, 1e-3, 1e-4]
only = int(sys.argv[7]) if len(sys.argv) > 7 else layers  # measure the first N layers only
x_all = np.memmap(f"{out}/x.f32", dtype="<f4", mode="r", shape=(layers, rows, d))
y = np.fromfile(f"{out}/labels.u8", dtype=np.uint8).astype(bool)
fold = np.fromfile(f"{out}/folds.u8", dtype=np.uint8)
inner = np.fromfile(f"{out}/inner_folds.u8", dtype=np.uint8).reshape(5, rows) if cv_l2 else None


def fit(xs, ys, lam, warm=None):
    lr = LogisticRegression(C=1.0 / (lam * len(ys)), solver="lbfgs", tol=tol, max_iter=1000,
                            warm_start=warm is not None)
    if warm is not None:
        lr.coef_, lr.intercept_ = warm.coef_.copy(), warm.intercept_.copy()
    return lr.fit(xs, ys)


def choose_l2(x, y, tr, k):
    totals = np.zeros(len(GRID))
    for j in range(3):
        itr, ite = tr & (inner[k] != j), inner[k] == j
        sc = StandardScaler().fit(x[itr])
        xs, xt = sc.transform(x[itr]), sc.transform(x[ite])
        prev = None
        for gi, lam in enumerate(GRID):
            prev = fit(xs, y[itr], lam, prev)
            totals[gi] += roc_auc_score(y[ite], prev.decision_function(xt))
    best = 0
    for i in range(1, len(GRID)):
        if totals[i] > totals[best] + 1e-12:
            best = i
    return GRID[best]
aurocs, iters = [], []
t0 = time.perf_counter()
for layer in range(only):
    x = np.asarray(x_all[layer])
    oof = np.empty(rows)
    for k in range(5):
        tr, te = fold != k, fold == k
        sc = StandardScaler().fit(x[tr])
        lam = choose_l2(x, y, tr, k) if cv_l2 else l2
        lr = fit(sc.transform(x[tr]), y[tr], lam)
        oof[te] = lr.decision_function(sc.transform(x[te]))
        iters.append(int(lr.n_iter_[0]))
    aurocs.append(float(roc_auc_score(y, oof)))
secs = time.perf_counter() - t0
json.dump({"tool": f"scikit-learn {sklearn.__version__}", "layers": only, "seconds": secs,
           "auroc": aurocs, "mean_iter": float(np.mean(iters))}, open(f"{out}/sklearn.json", "w"), indent=1)
print(f"scikit-learn: {only} layers in {secs:.2f}s (mean lbfgs iterations {np.mean(iters):.0f})")
