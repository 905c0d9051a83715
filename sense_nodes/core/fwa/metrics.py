"""Figures of merit of Sections III-D and IV-C.

- MDP = FN / (FN + TP) (Eq. 13), FAP = FP / (FP + TN) (Eq. 14), each with
  a two-sided 95 % Clopper-Pearson interval (exact binomial).
- APE: Euclidean distance between the fused and the true position; mean
  and 95th percentile ("95 %-confidence APE").
- Pair selection against pair labels: TP / FP / FN (Table II) and the
  Pearson correlation between attention and pair labels (Section V-B2).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k successes in n trials."""
    if n <= 0:
        return float("nan"), float("nan")
    a = 1 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def detection_figures(decision, label) -> dict:
    """decision, label: [S] bool -> MDP / FAP in % with 95 % CIs and counts."""
    d = np.asarray(decision, bool)
    y = np.asarray(label, bool)
    fn, tp = int((~d & y).sum()), int((d & y).sum())
    fp, tn = int((d & ~y).sum()), int((~d & ~y).sum())
    mlo, mhi = clopper_pearson(fn, fn + tp)
    flo, fhi = clopper_pearson(fp, fp + tn)
    return {"mdp_pct": 100 * fn / max(fn + tp, 1), "mdp_ci_low_pct": 100 * mlo, "mdp_ci_high_pct": 100 * mhi,
            "fap_pct": 100 * fp / max(fp + tn, 1), "fap_ci_low_pct": 100 * flo, "fap_ci_high_pct": 100 * fhi,
            "uav_present_samples": fn + tp, "uav_absent_samples": fp + tn}


def pick_threshold(scores, label) -> float:
    """The decision threshold minimising MDP + FAP on (validation) scores;
    ties go to the lower threshold (fewer missed UAVs: misses matter more
    than false alarms, Section V-B1)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(label, bool)
    if not np.isfinite(s).all():
        s = np.nan_to_num(s, nan=-np.inf, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
    cand = np.unique(s)
    best, best_t = np.inf, float(cand[0])
    for t in cand:
        d = s >= t
        err = (~d & y).sum() / max(y.sum(), 1) + (d & ~y).sum() / max((~y).sum(), 1)
        if err < best - 1e-12:
            best, best_t = err, float(t)
    return best_t


def ape(estimate, truth) -> np.ndarray:
    return np.linalg.norm(np.asarray(estimate, float) - np.asarray(truth, float), axis=-1)


def ape_figures(err, prefix: str = "") -> dict:
    e = np.asarray(err, float)
    if e.size == 0:
        return {f"{prefix}ape_mean_m": float("nan"), f"{prefix}ape95_m": float("nan")}
    return {f"{prefix}ape_mean_m": float(e.mean()), f"{prefix}ape95_m": float(np.percentile(e, 95))}


def selection_counts(selected: list, pair_label) -> dict:
    """selected: per scene the selected pair indices; pair_label [S, P] ->
    TP, FP, FN counts and the range of L."""
    tp = fp = fn = 0
    sizes = []
    for sel, y in zip(selected, np.asarray(pair_label, bool)):
        s = np.zeros(y.size, bool)
        s[np.asarray(sel, int)] = True
        tp += int((s & y).sum())
        fp += int((s & ~y).sum())
        fn += int((~s & y).sum())
        sizes.append(int(s.sum()))
    return {"tp": tp, "fp": fp, "fn": fn, "l_min": min(sizes, default=0), "l_max": max(sizes, default=0)}


def attention_pearson(attention, pair_label, present=None) -> float:
    """Pearson r between attention weights and pair labels over all pairs
    of all scenes (only the pairs in ``present`` when given)."""
    a = np.asarray(attention, float)
    y = np.asarray(pair_label, float)
    if present is not None:
        m = np.asarray(present, bool)
        a, y = a[m], y[m]
    a, y = a.ravel(), y.ravel()
    if a.size < 2 or a.std() == 0 or y.std() == 0:
        return float("nan")
    return float(stats.pearsonr(a, y)[0])
