"""BSense on the scenario library, every figure of Section 4 beside the paper's.

What it runs (all numbers are measured here, on the cases drawn with
``--seed`` / ``--site-seed``):

1. Noise fingerprints (Section 3.2) fitted on N_u = 700 UAV-free frames of
   the day each case was flown (the paper refits every T_u = 2 days from the
   most recent frames with detected UAV points excluded; drawing UAV-free
   frames of that day is that update with a perfect exclusion: our
   simplification, stated in the output).
2. Case-level 5-fold cross-validation (Section 4.1): per fold, the object
   thresholds are the 5th percentile of the UAV objects' confidences on the
   training cases (Section 3.3.4) and TrajFormer is trained on windows of the
   training cases only, its output policy (threshold, rule, coasting limit)
   chosen on out-of-fold scores of those cases (:mod:`.bsense_folds`); the
   test cases' trajectory types never appear in the training folds. The
   policy's parts are ablated on the same test tracks (``POLICY_ABLATIONS``:
   ``verify_default_*`` is the paper's rule at P(true) 0.5).
3. Each test case runs through the ablation stages (1) basic pipeline ...
   (5) full system (Figure 13); point-, object- and trajectory-level metrics
   (Section 4.1), GOSPA and HOTA, per family and per range band.
4. The special cases, in no fold (:mod:`.bsense_specials`): the UAV-free
   15-minute case (false-positive rate), the multi-UAV case and the
   cross-site case (its own site's fingerprints, no other retuning), each
   drawn ``--special-draws`` times; draw j (draw 0: the case of ``--seed``)
   runs through fold (j mod folds)'s full system, the basic pipeline
   beside. The headline figures pool a kind's draws (summed counts), the
   lowest and highest draw and each draw's figure beside them.

Work that does not change between stages, folds or runs is done once per
case (:mod:`.bsense_cache`): the day's fingerprints, the point filter and
clusters that every stage replays, the threshold source, each case's
TrajFormer windows at a fold's thresholds, the trained networks and the
Stone Soup peer's tracks, kept under a hash of their code and inputs
(``--no-cache``: computed afresh, nothing read or written). The figures do
not depend on it; the per-stage milliseconds of a replayed level are those
measured when it was computed. ``eval_wall_s`` is the run's wall time.
One tracking run per case and fold thresholds gives both the TrajFormer
windows and the tracks stage 5 scores (tracking does not depend on
verification), so the out-of-fold scores and the policy ablations run the
networks on recorded windows instead of the chain; stage 4's figures come
from stage 5's run. ``--jobs`` > 1 trains the folds' TrajFormers in worker
processes while this one runs the test cases, and one more worker
(:mod:`.bsense_casework`) shares this one's work: the windows, the test
cases, the Stone Soup peer, the multi-UAV and cross-site draws. torch runs
one thread everywhere and the tallies take the cases in order, so the
figures do not depend on it.
"""
from __future__ import annotations

import os
import time

from sense_nodes.errors import UserError
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cache import StageCache
from sense_nodes.eval.bsense_cases import CaseData, DayModels, calibration_spec, load_case, uav_truth  # noqa: F401
from sense_nodes.eval.bsense_report import (PAPER, STAGE_NAMES, peer_figures, plot_figure14, print_details,  # noqa: F401
                                            stage_figures)
from sense_nodes.eval.bsense_stage import CaseLevels, Probes, StageResult, run_stage, uav_confidences  # noqa: F401
from sense_nodes.eval.bsense_casework import (PEER_STAGE, POLICY_ABLATIONS, PROBE_KINDS, PROBES,  # noqa: F401
                                              STAGES, CaseOutcome, CaseRunner, Pending,
                                              special_counts)
from sense_nodes.eval.bsense_folds import FoldClassifiers, case_folds, fold_thresholds
from sense_nodes.eval.bsense_policy import policy_label
from sense_nodes.eval.bsense_specials import pooled, score_specials, spread_figures
from sense_nodes.eval.bsense_verify import VERIFIERS

# draws of each special case (multi-UAV, cross-site, UAV-free): enough that one
# unlucky draw does not make the figure, few enough that the whole cold
# evaluation keeps to its wall budget (the UAV-free case alone is 15 minutes
# of frames)
SPECIAL_DRAWS = 2

def add_arguments(parser):
    parser.add_argument("--seed", type=int, default=None, help="draw every case afresh with this seed")
    parser.add_argument("--site-seed", type=int, default=None, help="draw a new site clutter map")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 2 folds, 2 test cases each, 160 frames a case (smoke test)")
    parser.add_argument("--folds", type=int, default=5, help="case-level cross-validation folds")
    parser.add_argument("--max-frames", type=int, default=0, help="cap frames per case (0 = whole case)")
    parser.add_argument("--epochs", type=int, default=None, help="TrajFormer epochs per fold")
    parser.add_argument("--plots", default="out/bsense", help="folder for the PNGs ('' = none)")
    parser.add_argument("--peer-cases", type=int, default=2,
                        help="fold-0 test cases run through the Stone Soup peer (it takes ~0.4 s a frame)")
    parser.add_argument("--object-rule", choices=("trained", "paper"), default="paper",
                        help="object keep rule: 'paper' = 5th percentile of UAV confidences, either passes "
                             "(Section 3.3.4); 'trained' = keep rule and ramp length chosen per fold on its "
                             "training cases (fewest other objects while keeping 95%% of UAV objects)")
    parser.add_argument("--fallback", choices=("none", "mixture", "pool", "both"), default="none",
                        help="fingerprints for cubes without a Gaussian of their own: 'none' (paper), a Gaussian "
                             "mixture for cubes failing Henze-Zirkler, pooled neighbours for sparse cubes, or both")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes training the folds' TrajFormers beside the one running the test cases, "
                             "which shares its cases with one more process (1 = all in this process; the figures "
                             "do not depend on it)")
    parser.add_argument("--special-draws", type=int, default=SPECIAL_DRAWS,
                        help="draws of each special case (multi-UAV, cross-site, UAV-free), draw j through fold "
                             "(j mod folds)'s full system; their figures pool the draws (draw 0: the case of --seed)")
    parser.add_argument("--verifier", choices=VERIFIERS, default="boosted",
                        help="what verifies a track: 'boosted' (gradient-boosted trees, the deployment's default) "
                             "or 'trajformer' (the paper's network), both on the same windows and features; the "
                             "output policy is chosen the same way for both")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the stage cache ($SENSE_CACHE/bsense_eval): every case's "
                             "point filter, clusters, windows, networks and peer tracks are computed afresh")


class Tally:
    """Everything the folds accumulate over the test cases."""

    def __init__(self, test_names: list, plot_cases: list, peer_cases: int):
        self.test_names, self.peer_cases = test_names, peer_cases
        self.per_stage = {s: M.DetectionCounts() for s in STAGES}
        # stage 5 under other output policies, same classifiers and tracks (ablation): see POLICY_ABLATIONS
        self.ablations = {name: M.DetectionCounts() for name in POLICY_ABLATIONS}
        self.gospa = {s: 0.0 for s in STAGES}
        self.hota_frames = {s: [] for s in STAGES}
        self.timing: dict = {}
        self.points, self.objects, self.raw_objects = M.PointCounts(), M.DetectionCounts(), M.DetectionCounts()
        self.sources = M.SourceTally()      # the full system's false objects and outputs by noise source
        # Section 3.3.4 keeps an object when either confidence passes ("or"). A
        # velocity match needs a spatial match, so C_v <= C_s and with equal
        # thresholds "or" makes stage 4 the same as stage 3, yet the paper's
        # Figure 13 has the velocity stage raise precision: "and" (both must
        # pass) is measured beside it, at the object level.
        self.objects_and = M.DetectionCounts()
        self.per_family: dict = {}
        self.bands = M.RangeBands()
        self.fold_info: list = []
        self.plots = {n: {} for n in plot_cases}
        self.peer_dets: list = []          # fold 0's stage-4 detections, for the Stone Soup peer
        self.ours_stage4, self.ours_gospa4 = M.DetectionCounts(), 0.0
        self.systems: dict = {}            # fold -> (classifier, thresholds, output policy)

    def add_outcome(self, case: CaseData, outcome: CaseOutcome) -> None:
        """One test case's stages and policy ablations (:func:`~.bsense_casework.case_outcome`)."""
        for stage, r, probes in outcome.stages:
            self.add(case.name, case, stage, r, probes)
        for name, counts in outcome.ablations.items():
            self.ablations[name] = self.ablations[name].merge(counts)

    def add(self, name: str, case: CaseData, stage: int, r: StageResult, probes: Probes) -> None:
        for kind in PROBE_KINDS:        # this case's probes into the run's (sums of counts)
            if getattr(probes, kind) is not None:
                setattr(self, kind, getattr(self, kind).merge(getattr(probes, kind)))
        if probes.detections is not None:
            self.peer_dets.append(probes.detections)
            self.ours_stage4 = self.ours_stage4.merge(r.det)
            self.ours_gospa4 += r.gospa_sum
        self.per_stage[stage] = self.per_stage[stage].merge(r.det)
        self.gospa[stage] += r.gospa_sum
        # ids restart in every case: keep them apart so HOTA's association
        # score never links one case's tracks to another's
        off = 1_000_000 * (self.test_names.index(name) + 1)
        self.hota_frames[stage] += [(g + off, x, t + off, o) for g, x, t, o in r.hota_frames]
        for k, v in r.timing_ms.items():
            self.timing.setdefault(k, []).extend(v)
        if stage == STAGES[-1]:
            family = self.per_family.setdefault(case.traj_type, M.DetectionCounts())
            self.per_family[case.traj_type] = family.merge(r.det)
            for lo, c in r.bands.bands.items():
                self.bands.bands[lo] = self.bands.bands.get(lo, M.DetectionCounts()).merge(c)
        if name in self.plots and stage in (1, 5):
            self.plots[name][stage] = r.outputs


# --- the whole evaluation ----------------------------------------------------------

def main(args):
    from tqdm import tqdm

    if args.folds < 2:
        raise UserError(f"--folds must be >= 2, got {args.folds}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.special_draws < 1:
        raise UserError(f"--special-draws must be >= 1, got {args.special_draws}")
    from sense_nodes.core.bsense.trajformer import single_thread_inference
    # one torch thread here and in every worker: a network's weights depend on
    # the thread count, so the figures do not depend on the machine or --jobs
    single_thread_inference()
    t_start = time.perf_counter()
    max_frames = args.max_frames or (160 if args.quick else 0)
    folds, test_names, train_names = case_folds(args.folds, args.quick)
    print(f"loading {len(set(test_names) | set(train_names))} cases ...")
    cases = {n: load_case(n, args.seed, args.site_seed, max_frames)
             for n in tqdm(sorted(set(test_names) | set(train_names)), desc="cases", leave=False)}
    cache = StageCache(enabled=not args.no_cache)
    model_for = DayModels(args.seed, args.site_seed, cache, noise_config(args.fallback))
    levels = CaseLevels(model_for, cache)
    runner = CaseRunner(levels, worker=args.jobs > 1)
    print("object confidences of UAVs on every case (thresholds per fold come from its training cases) ...")
    confs = runner.confidences(cases)
    plot_cases = [n for n in test_names if cases[n].traj_type == "star"][:1] or test_names[:1]
    tally = Tally(test_names, plot_cases, args.peer_cases)
    thresholds = [fold_thresholds(fi, fold, confs, args.object_rule) for fi, fold in enumerate(folds)]
    classifiers = FoldClassifiers(folds, cases, thresholds, levels, args, prefetch=runner.windows)
    peer: list = []      # the Stone Soup peer's tracks per case, computed by the case worker if any

    def on_peer(detections):
        from sense_nodes.eval.bsense_report import peer_tracks
        peer.append(runner.task(peer_tracks, [detections], cache.enabled, cache.root))
    pending, interrupted = Pending(tally, on_peer), True
    try:
        try:
            for fi, fold in enumerate(folds):
                _fold_banner(fi, len(folds), len(fold.train), len(fold.test), t_start, pending.folds_done)
                _run_fold(fi, len(folds), fold, cases, thresholds[fi], classifiers, levels, tally, runner, pending)
            pending.merge(wait=True)
        except KeyboardInterrupt:  # keep what the finished cases measured
            runner.close(wait=False)
            pending.merge()
            print(f"\ninterrupted: the figures below cover the {pending.folds_done} finished fold(s) and the "
                  f"cases finished in the others")
            classifiers.close(wait=False)
            peer = [None]
        folds_done = pending.folds_done
        interrupted = folds_done < len(folds)
        if 0 not in tally.systems:
            raise UserError("interrupted before the first fold's classifier was trained: nothing measured")
        t_specials = time.perf_counter()
        draws, interrupted = _specials(tally.systems, classifiers.nets, levels, args, max_frames, interrupted,
                                       runner)
        specials_s = time.perf_counter() - t_specials
        tracks = [f.result()[0] for f in peer] if peer and None not in peer else None
        figures = _all_figures(tally, pooled(draws), len(folds), cache, tracks)
        figures.update(spread_figures(draws))
        figures["special_draws"], figures["specials_wall_s"] = args.special_draws, specials_s
    finally:
        runner.close(wait=False)
        classifiers.close(wait=0 in tally.systems and not interrupted)
    print(cache.summary())
    figures["folds_completed"] = folds_done
    figures["verifier"] = args.verifier
    figures["interrupted"] = interrupted
    figures["frames_evaluated"] = tally.per_stage[5].frames
    figures["cases_evaluated"] = len(test_names)
    figures["eval_wall_s"] = time.perf_counter() - t_start
    print_details(tally.per_stage, tally.per_family, tally.bands, tally.fold_info)
    if args.plots:
        plot_figure14(args.plots, cases, tally.plots)
    return figures


def noise_config(fallback: str):
    """The NoiseModelConfig of a ``--fallback`` choice (:mod:`~sense_nodes.core.bsense.fallback`)."""
    from sense_nodes.core.bsense.noise_model import FALLBACK_POOL_RADIUS, MIXTURE_COMPONENTS, NoiseModelConfig

    return NoiseModelConfig(pool_radius=FALLBACK_POOL_RADIUS if fallback in ("pool", "both") else 0,
                            mixture_components=MIXTURE_COMPONENTS if fallback in ("mixture", "both") else 0)


def _run_fold(fi, n_folds, fold, cases, thresholds, classifiers: FoldClassifiers, levels, tally: Tally,
              runner: CaseRunner, pending: Pending) -> None:
    """One fold: TrajFormer from its training cases (thresholds from them
    too), then its test cases through every stage, here and, when the case
    worker is free, there (taken from the other end of the list); their
    outcomes go to ``pending`` in the fold's order."""
    from tqdm import tqdm

    classifier, policy, table, classifier_s = classifiers.get(fi)
    net = classifiers.nets.get(fi)
    tally.systems[fi] = (classifier, thresholds, policy)
    tally.fold_info.append({"fold": fi, "test_types": list(fold.test_types), "tau_s": thresholds.tau_s,
                            "tau_v": thresholds.tau_v, "keep_rule": thresholds.combine,
                            "ramp_frames": thresholds.ramp, "verify_threshold": policy.threshold,
                            "output_policy": policy_label(policy), "oof_f1_by_policy": table,
                            "classifier_s": classifier_s})
    todo, handles = list(fold.test), {}
    with tqdm(total=len(todo), desc=f"fold {fi + 1}/{n_folds}", leave=False) as bar:
        while todo:
            pending.merge()
            there = net is not None and runner.idle()
            name = todo.pop() if there else todo.pop(0)
            peer = fi == 0 and fold.test.index(name) < tally.peer_cases
            handles[name] = (runner.submit(cases[name], thresholds, net, policy, peer) if there else
                             runner.here(cases[name], thresholds, classifier, policy, peer))
            bar.update()
    for name in fold.test:
        pending.add(fi, cases[name], handles[name])
    pending.merge()


def _specials(systems, nets, levels, args, max_frames: int, interrupted: bool, runner: CaseRunner):
    """The special cases' draws (:func:`~.bsense_specials.score_specials`),
    none when the folds were interrupted or when interrupted here; (draws,
    interrupted)."""
    print(f"the special cases (UAV-free, multi-UAV, cross-site), {args.special_draws} draw(s) each, through the "
          f"folds' full systems" + (" (Ctrl-C to skip them)" if not interrupted else " are skipped") + " ...",
          flush=True)
    if interrupted:       # no draws: the special figures are NaN
        return [], interrupted
    try:
        return score_specials(systems, nets, levels, runner, args.seed, args.site_seed, max_frames,
                              args.special_draws), interrupted
    except KeyboardInterrupt:
        print("\ninterrupted in the special cases: their figures are left empty")
        return [], True


def _all_figures(tally: Tally, specials, n_folds: int, cache=None, peer=None) -> dict:
    figures = stage_figures(tally.per_stage, tally.gospa, tally.hota_frames, tally.points, tally.objects,
                            tally.raw_objects, specials, tally.timing, n_folds)
    figures.update(peer_figures(tally.peer_dets, tally.ours_stage4, tally.ours_gospa4, tally.timing, cache, peer))
    figures.update(tally.sources.figures())
    figures["objects_and_false_objects_per_frame"] = tally.objects_and.false_per_frame
    figures["objects_and_object_recall_pct"] = tally.objects_and.recall_pct
    for name, c in tally.ablations.items():
        figures.update({f"{name}_{k}": v for k, v in (
            ("f1_pct", c.f1_pct), ("precision_pct", c.precision_pct), ("recall_pct", c.recall_pct),
            ("false_per_frame", c.false_per_frame))})
    figures["verify_default_uav_free_fp_rate_pct"] = specials["uav_free_default"].fp_frame_rate_pct
    for d in tally.fold_info:
        figures[f"fold{d['fold']}_verify_threshold"] = d["verify_threshold"]
        figures[f"fold{d['fold']}_object_rule"] = f"{d['keep_rule']} K={d['ramp_frames']}"
        figures[f"fold{d['fold']}_tau_s"], figures[f"fold{d['fold']}_tau_v"] = d["tau_s"], d["tau_v"]
        figures[f"fold{d['fold']}_output_policy"] = d["output_policy"]
        figures[f"fold{d['fold']}_classifier_wall_s"] = d["classifier_s"]     # windows, networks, policy choice
    return figures


def _fold_banner(fi: int, n_folds: int, n_train: int, n_test: int, t_start: float, done: int) -> None:
    """One line per fold with the time so far and, after the first, an ETA."""
    elapsed = time.perf_counter() - t_start
    eta = f", about {elapsed / done * (n_folds - done) / 60:.1f} min left" if done else ""
    print(f"fold {fi + 1}/{n_folds}: the verifier on {n_train} training cases, then {n_test} test cases "
          f"through 5 stages ({elapsed / 60:.1f} min so far{eta})", flush=True)
