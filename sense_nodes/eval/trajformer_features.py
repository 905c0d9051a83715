"""TrajFormer's observation features, ablated (BSense Section 3.4.2).

The paper feeds TrajFormer "spatial motion and signal features" of each of
the last W observations and lists no more. Ours are 18 a frame: the 15 of
that kind (position, range, height, velocity, Doppler, five signal metrics,
point count) and three more, the object's spatial and velocity confidences
(Eq. 13, 16) and the IMM's probability of the turning model (Section
3.4.1); then four frame-to-frame motion changes and four statistics of the
track's whole kept history (``trajformer.motion_features``,
``trajformer.track_features``). This command measures what each group adds.

Per fold of the case-level split (Section 4.1), the chain up to stage 4 runs
over the fold's training and test cases (the fold's 5th-percentile object
thresholds, fingerprints of each case's day), every track's sliding windows
are collected once, and TrajFormer is trained on the training windows with
the first 15, 18, 22 and all 26 features, same seeds and epochs. On the test
cases' windows it reports:

* ``window_auc``: ROC AUC of P(true) over windows;
* ``track_auc``: ROC AUC over tracks, a track scored by its highest window
  (the full system verifies a track at its first window over the threshold,
  so that maximum decides it) and labelled true when most of its windows are;
* ``false_tracks_at_tpr<q>``: false tracks scoring at least the score that
  keeps q% of the true tracks; the number the verification threshold trades.
"""
from __future__ import annotations

import time

import numpy as np

TPRS = (70, 80, 90)


def add_arguments(parser):
    parser.add_argument("--folds", default="2,4", help="comma list of test folds of the 5-fold split")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per feature set")
    parser.add_argument("--epochs", type=int, default=8, help="TrajFormer epochs")
    parser.add_argument("--max-frames", type=int, default=200, help="frames per case (0 = whole case)")
    parser.add_argument("--seed", type=int, default=None, help="draw every case afresh with this seed")
    parser.add_argument("--site-seed", type=int, default=None, help="draw a new site clutter map")


def track_scores(p: np.ndarray, y: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score, label) per track: its highest window score, and whether most
    of its windows are true."""
    ids, inv = np.unique(tracks, return_inverse=True)
    best = np.full(ids.size, -np.inf)
    np.maximum.at(best, inv, p)
    frac = np.bincount(inv, weights=y, minlength=ids.size) / np.bincount(inv, minlength=ids.size)
    return best, frac >= 0.5


def false_tracks_at_tpr(score: np.ndarray, label: np.ndarray, tpr_pct: float) -> int:
    """False tracks scoring at least the score that keeps ``tpr_pct``% of the true ones."""
    if not label.any():
        return 0
    thr = np.quantile(score[label], 1.0 - tpr_pct / 100.0)
    return int(((score >= thr) & ~label).sum())


def main(args):
    from sklearn.metrics import roc_auc_score
    from tqdm import tqdm

    from sense_nodes.errors import UserError
    from sense_nodes.core.bsense.object_filter import ObjectFilterConfig, confidence_thresholds
    from sense_nodes.core.bsense.pipeline import PipelineConfig
    from sense_nodes.core.bsense.training import TrainConfig, train, windows_from_cases
    from sense_nodes.core.bsense.trajformer import BASE_FEATURES, N_FEATURES, WINDOW_FEATURES, TrajFormerConfig
    from sense_nodes.data.bs_sim import library
    from sense_nodes.eval.bsense_cases import DayModels, load_case
    from sense_nodes.eval.bsense_stage import uav_confidences

    try:
        fold_ids = [int(f) for f in str(args.folds).split(",") if f.strip()]
    except ValueError:
        raise UserError(f"--folds must be a comma list of integers, got '{args.folds}'") from None
    folds = library.folds(5)
    bad = [f for f in fold_ids if not 0 <= f < len(folds)]
    if bad or not fold_ids:
        raise UserError(f"--folds: each fold must be in 0..{len(folds) - 1}, got '{args.folds}'")
    if args.seeds < 1 or args.epochs < 1:
        raise UserError("--seeds and --epochs must be at least 1")
    # the three features beyond the paper's kind end the first BASE_FEATURES, the
    # motion features follow them, the track statistics come last (trajformer.window_features)
    feature_sets = {"paper15": BASE_FEATURES - 3, "ours18": BASE_FEATURES, "motion22": WINDOW_FEATURES,
                    "track26": N_FEATURES}
    t0 = time.perf_counter()
    model_for = DayModels(args.seed, args.site_seed)
    figures: dict = {}
    per_set: dict = {name: {} for name in feature_sets}      # name -> figure -> values over folds and seeds
    for fi in fold_ids:
        fold = folds[fi]
        names = list(fold.train) + list(fold.test)
        cases = {n: load_case(n, args.seed, args.site_seed, args.max_frames)
                 for n in tqdm(names, desc=f"fold {fi}: cases", leave=False)}
        conf = np.concatenate([uav_confidences(cases[n], model_for(cases[n])) for n in fold.train])
        conf = conf[conf[:, 3] > 0]   # the UAV objects' rows
        tau = confidence_thresholds(conf[:, 0], conf[:, 1])
        cfg = PipelineConfig(stage=4, objects=ObjectFilterConfig(tau_s=tau[0], tau_v=tau[1]))

        def windows(part):
            return windows_from_cases([(cases[n].frames, model_for(cases[n])) for n in part], None, cfg,
                                      return_tracks=True)

        Xtr, ytr, _, _ = windows(fold.train)
        Xte, yte, _, tte = windows(fold.test)
        if ytr.min() == ytr.max() or yte.min() == yte.max():
            raise UserError(f"fold {fi}: the windows are all of one class; use more frames (--max-frames)")
        _, label = track_scores(np.zeros(len(yte)), yte, tte)
        figures.update({f"fold{fi}_train_windows": int(len(ytr)), f"fold{fi}_test_windows": int(len(yte)),
                        f"fold{fi}_test_tracks": int(label.size), f"fold{fi}_test_true_tracks": int(label.sum())})
        for name, nf in feature_sets.items():
            for seed in range(args.seeds):
                model, _ = train(TrainConfig(epochs=args.epochs, seed=seed), None,
                                 samples=(Xtr[..., :nf], ytr), progress=False,
                                 model_config=TrajFormerConfig(n_features=nf))
                p = model.predict_proba(Xte[..., :nf])
                score, _ = track_scores(p, yte, tte)
                row = {"window_auc": float(roc_auc_score(yte, p)), "track_auc": float(roc_auc_score(label, score)),
                       **{f"false_tracks_at_tpr{q}": false_tracks_at_tpr(score, label, q) for q in TPRS}}
                for k, v in row.items():
                    figures[f"fold{fi}_{name}_s{seed}_{k}"] = v
                    per_set[name].setdefault(k, []).append(v)
    for name, rows in per_set.items():
        figures.update({f"{name}_{k}_mean": float(np.mean(v)) for k, v in rows.items()})
    figures["eval_wall_s"] = time.perf_counter() - t0
    return figures
