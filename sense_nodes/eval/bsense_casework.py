"""One test case of a BSense evaluation fold through every ablation stage
(Figure 13) and the output-policy ablations, computed in this process or
in a worker process (:class:`CaseRunner`), and merged into the fold
tallies in the cases' order whichever process computed them.

Each case's figures come from its own frames, fold thresholds, noise model,
clusters and network only, and every tally a case adds to is a sum over
cases taken in the same order, so where a case ran does not change a
figure: the worker gets the same clusters (and the same recorded tracking
run, when this process holds it) and the same network weights, and runs
torch on one thread as this process does.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sense_nodes.core.bsense.verification import OutputPolicy
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import CaseData
from sense_nodes.eval.bsense_policy import DEFAULT_VERIFY_THRESHOLD, policy_counts
from sense_nodes.eval.bsense_record import case_windows, chain_config, windows_key
from sense_nodes.eval.bsense_stage import CaseLevels, Probes, StageResult, run_stage

STAGES = (1, 2, 3, 4, 5)
# what each stage's run measures besides its outputs (Probes fields), and the
# stage whose detections feed the Stone Soup peer
PROBES = {2: ("points",), 4: ("objects", "raw_objects", "objects_and"), 5: ("sources",)}
PEER_STAGE = 4
PROBE_KINDS = {"points": M.PointCounts, "objects": M.DetectionCounts, "raw_objects": M.DetectionCounts,
               "objects_and": M.DetectionCounts, "sources": M.SourceTally}
# the full system's output policy (chosen per fold) against variants of it, each
# replayed on the same test tracks: the paper's rule at the softmax argmax, and
# the chosen policy without each of its parts
POLICY_ABLATIONS = {
    "verify_default": lambda p: OutputPolicy(DEFAULT_VERIFY_THRESHOLD),
    "policy_threshold_only": lambda p: OutputPolicy(p.threshold),
    "policy_no_coast_limit": lambda p: dataclasses.replace(p, coast_frames=None),
    "policy_once_rule": lambda p: dataclasses.replace(p, rule="once"),
}


@dataclass
class CaseOutcome:
    """What one test case adds to the tallies: per stage (stage, StageResult,
    Probes of this case alone), and each policy ablation's counts."""
    name: str
    stages: list
    ablations: dict


def fresh_probes(stage: int, peer: bool) -> Probes:
    """Empty probes of ``stage`` (``peer``: keep the stage's detections for the Stone Soup peer)."""
    probes = Probes(**{name: PROBE_KINDS[name]() for name in PROBES.get(stage, ())})
    if stage == PEER_STAGE and peer:
        probes.detections = []
    return probes


def case_outcome(case: CaseData, levels, thresholds, classifier, policy, peer: bool) -> CaseOutcome:
    """``case`` through every stage with the fold's ``thresholds``,
    ``classifier`` and output ``policy`` (``levels``: a CaseLevels), then its
    tracks under each ablated policy (the same tracks the full system ran on,
    scored once)."""
    model = levels.model_for(case)
    done = {}
    for s in STAGES:
        if s == 4:      # from stage 5's run (:func:`run_stage`)
            continue
        probes = fresh_probes(s, peer)
        kept = levels(case, with_model=s >= 2)
        stage4 = (StageResult(), fresh_probes(4, peer)) if s == 5 else None
        r = run_stage(case, s, model, thresholds, classifier, policy if s == 5 else None, probes, clusters=kept,
                      stage4=stage4)
        done[s] = (r, probes)
        if stage4 is not None:
            done[4] = stage4
    stages = [(s, *done[s]) for s in STAGES]
    record = case_windows(case, levels.model_for, chain_config(thresholds), levels.cache, levels)[2]
    tracks = record.tracks(classifier)
    ablations = {name: policy_counts([tracks], variant(policy)) for name, variant in POLICY_ABLATIONS.items()}
    return CaseOutcome(case.name, stages, ablations)


class FixedModel:
    """A DayModels stand-in for one case in a worker: its noise model and the model's key."""

    def __init__(self, model, key: str):
        self.model, self.key = model, key

    def __call__(self, case=None, site_kind: str = "A"):
        return self.model

    def key_of(self, model) -> str:
        return self.key


@dataclass
class CaseJob:
    """Everything a worker needs for :func:`case_outcome` of one case."""
    case: CaseData
    model: object
    model_key: str
    clusters: object          # the case's CaseClusters with its model
    windows: object           # the recorded tracking run at the fold's thresholds, or None (computed there)
    thresholds: object
    net: tuple                # the fold's verifier as bsense_verify.network_data
    policy: OutputPolicy
    peer: bool
    cache_enabled: bool
    cache_root: object


def outcome_in_worker(job: CaseJob) -> CaseOutcome:
    """:func:`case_outcome` in a worker process, from what this process computed."""
    import torch

    from sense_nodes.eval.bsense_verify import network_from

    torch.set_num_threads(1)
    model_for, cfg, cache, levels = _worker_levels(job)
    if job.windows is not None:
        cache.memo[("windows", windows_key(job.case, model_for, cfg, cache))] = job.windows
    return case_outcome(job.case, levels, job.thresholds, network_from(*job.net), job.policy, job.peer)


def windows_in_worker(job: CaseJob):
    """:func:`case_windows` of ``job``'s case at its thresholds, in a worker process."""
    return case_windows(job.case, *_worker_levels(job))


def special_counts(case, levels, thresholds, classifier, policy, site_kind: str = "A") -> tuple:
    """(full system, basic pipeline) detection counts of a special case
    (multi-UAV, cross-site) with a fold's ``thresholds``, ``classifier`` and
    ``policy`` (:mod:`.bsense_specials`); ``site_kind``: the site whose
    fingerprints it uses."""
    model = levels.model_for(case, site_kind)
    full = run_stage(case, 5, model, thresholds, classifier, policy, clusters=levels(case, site_kind=site_kind))
    basic = run_stage(case, 1, None, thresholds, None, clusters=levels(case, with_model=False))
    return full.det, basic.det


def special_in_worker(job: CaseJob, site_kind: str) -> tuple:
    """:func:`special_counts` in a worker process (its clusters made there)."""
    import torch

    from sense_nodes.eval.bsense_verify import network_from

    torch.set_num_threads(1)
    levels = _worker_levels(job)[3]
    return special_counts(job.case, levels, job.thresholds, network_from(*job.net), job.policy, site_kind)


def confidences_in_worker(job: CaseJob) -> tuple:
    """(clusters, confidences) of ``job``'s case with its model, in a worker process."""
    levels = _worker_levels(job)[3]
    return levels(job.case), levels.confidences(job.case)


def _worker_levels(job: CaseJob):
    """(model_for, cfg, cache, levels) of ``job`` in a worker: its model and clusters."""
    from sense_nodes.eval.bsense_cache import StageCache, digest

    cache = StageCache(enabled=job.cache_enabled, root=job.cache_root)
    levels = CaseLevels(FixedModel(job.model, job.model_key), cache)
    if job.clusters is not None:
        cache.memo[("clusters", digest(cache.point_code, job.case.source, job.model_key))] = job.clusters
    cfg = chain_config(job.thresholds) if job.thresholds is not None else None
    return levels.model_for, cfg, cache, levels


class CaseRunner:
    """Runs the per-case work of the evaluation (confidences, TrajFormer
    windows, test cases, special cases) here or, with ``worker``, also in
    one worker process (spawned, not niced: this work is the run's longest
    chain; the fold trainings run beside it). ``idle()``: the worker can
    take a case; ``submit(...)``: a Future of a test case's
    :class:`CaseOutcome`; ``task(fn, ...)``: anything else there."""

    def __init__(self, levels, worker: bool):
        self.levels, self.pool, self.busy = levels, None, None
        if worker:
            import concurrent.futures
            import multiprocessing

            self.pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def idle(self) -> bool:
        return self.pool is not None and (self.busy is None or self.busy.done())

    def here(self, case, thresholds, classifier, policy, peer: bool) -> CaseOutcome:
        return case_outcome(case, self.levels, thresholds, classifier, policy, peer)

    def submit(self, case, thresholds, net, policy, peer: bool):
        levels, cache = self.levels, self.levels.cache
        model = levels.model_for(case)
        key = windows_key(case, levels.model_for, chain_config(thresholds), cache)
        held = cache.memo.get(("windows", key))
        job = CaseJob(case, model, levels.model_for.key_of(model), levels(case), None if held is None
                      else (None, None, held[2]), thresholds, net, policy, peer, cache.enabled, cache.root)
        self.busy = self.pool.submit(outcome_in_worker, job)
        return self.busy

    def windows(self, cases, thresholds) -> None:
        """Each of ``cases``' TrajFormer windows at ``thresholds``
        (:func:`case_windows`) into the cache's memory, made here and, when
        free, in the worker (from the other end of the list)."""
        levels, cache = self.levels, self.levels.cache
        cfg = chain_config(thresholds)
        todo = [c for c in cases if ("windows", windows_key(c, levels.model_for, cfg, cache)) not in cache.memo]
        there = []
        while todo:
            if self.idle():
                case = todo.pop()
                model = levels.model_for(case)
                job = CaseJob(case, model, levels.model_for.key_of(model), levels(case), None, thresholds, (),
                              None, False, cache.enabled, cache.root)
                self.busy = self.pool.submit(windows_in_worker, job)
                there.append((case, self.busy))
            else:
                case_windows(todo.pop(0), levels.model_for, cfg, cache, levels)
        for case, future in there:
            cache.memo[("windows", windows_key(case, levels.model_for, cfg, cache))] = future.result()

    def special(self, case, thresholds, net, policy, site_kind: str = "A"):
        """A Future of :func:`special_counts` of ``case`` in the worker (None without one)."""
        if self.pool is None or net is None:
            return None
        model = self.levels.model_for(case, site_kind)
        cache = self.levels.cache
        job = CaseJob(case, model, self.levels.model_for.key_of(model), None, None, thresholds, net, policy, False,
                      cache.enabled, cache.root)
        return self.pool.submit(special_in_worker, job, site_kind)

    def confidences(self, cases: dict) -> dict:
        """``levels.confidences`` of each of ``cases`` (name -> CaseData),
        made here and, when free, in the worker (from the other end; the
        day's model is fitted here first), in the order given."""
        levels, cache = self.levels, self.levels.cache
        todo, there, out = list(cases.values()), [], {}
        while todo:
            if self.idle():
                case = todo.pop()
                model = levels.model_for(case)
                job = CaseJob(case, model, levels.model_for.key_of(model), None, None, None, (), None, False,
                              cache.enabled, cache.root)
                there.append((case, self.task(confidences_in_worker, job)))
            else:
                case = todo.pop(0)
                out[case.name] = levels.confidences(case)
        for case, future in there:
            clusters, out[case.name] = future.result()
            levels.hold(case, clusters, out[case.name])
        return {name: out[name] for name in cases}

    def task(self, fn, *args):
        """``fn(*args)`` in the worker, ahead of the cases not yet given to
        it (a Future; None without a worker)."""
        if self.pool is None:
            return None
        self.busy = self.pool.submit(fn, *args)
        return self.busy

    def close(self, wait: bool = True) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=wait, cancel_futures=True)
            self.pool = None


class Pending:
    """Test-case outcomes (or Futures of them) waiting to be added to
    ``tally`` in the order the cases were given: ``merge()`` adds those
    ready at the front, ``merge(wait=True)`` all of them.
    ``on_peer(detections)`` is called with each case's detections for the
    Stone Soup peer as it is added; ``folds_done``: folds whose every case is in."""

    def __init__(self, tally, on_peer=None):
        self.tally, self.on_peer, self.items = tally, on_peer, []
        self.left: dict = {}
        self.folds_done = 0

    def add(self, fold: int, case, handle) -> None:
        self.items.append((fold, case, handle))
        self.left[fold] = self.left.get(fold, 0) + 1

    def merge(self, wait: bool = False) -> None:
        while self.items:
            fold, case, h = self.items[0]
            if not isinstance(h, CaseOutcome):
                if h.cancelled() or not (wait or h.done()):
                    return
                h = h.result()
            self.items.pop(0)
            n_peer = len(self.tally.peer_dets)
            self.tally.add_outcome(case, h)
            if self.on_peer is not None and len(self.tally.peer_dets) > n_peer:
                self.on_peer(self.tally.peer_dets[-1])
            self.left[fold] -= 1
            self.folds_done += self.left[fold] == 0
