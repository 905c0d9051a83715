"""The case-level folds of the BSense evaluation (Section 4.1) and what each
fold learns from its training cases only: the object keep rule (Section
3.3.4, :func:`fold_thresholds`) and TrajFormer with its output policy
(:class:`FoldClassifiers`, trained here or in worker processes)."""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from sense_nodes.errors import UserError
from sense_nodes.eval.bsense_verify import fit_classifier, fit_in_worker, fold_inputs, network_from


def case_folds(n_folds: int, quick: bool = False):
    """(folds, test case names, training case names) of the library's
    case-level ``n_folds``-fold split; ``quick`` keeps 2 folds, 2 test cases
    each and 6 training cases."""
    from sense_nodes.data.bs_sim import library

    folds = library.folds(n_folds)
    if quick:
        folds = [dataclasses.replace(f, test=tuple(f.test[:2])) for f in folds[:2]]
    test_names = sorted({n for f in folds for n in f.test})
    train_names = sorted({n for f in folds for n in f.train})
    if quick:
        train_names = sorted({n for f in folds for n in f.train[:6]})
        folds = [dataclasses.replace(f, train=tuple(n for n in f.train if n in train_names)) for f in folds]
    return folds, test_names, train_names


def fold_thresholds(fi, fold, confs, object_rule: str):
    """A fold's object keep rule from the UAV confidences of its training
    cases (Section 3.3.4: ``"paper"``; ``"trained"``: chosen on them)."""
    from sense_nodes.core.bsense.object_filter import KeepRule, choose_keep_rule, confidence_thresholds

    tr = np.concatenate([confs[n] for n in fold.train if confs[n].size] or [np.zeros((0, 4))])
    if not (tr[:, 3] > 0).any():
        raise UserError(f"fold {fi}: no UAV objects in the training cases to set thresholds from")
    if object_rule == "paper":
        uav = tr[tr[:, 3] > 0]
        return KeepRule(*confidence_thresholds(uav[:, 0], uav[:, 1]))
    return choose_keep_rule(tr)


class FoldClassifiers:
    """Each fold's TrajFormer and output policy (:func:`fit_classifier`).
    With ``args.jobs`` > 1 the folds' windows are made here first and the
    networks trained in that many worker processes (spawned, one torch
    thread each, the seeds as in one process) while this process runs the
    test cases of the folds already trained; ``get(fi)`` waits for fold
    ``fi``'s. The networks, and so the figures, are the same either way:
    the training sees the same windows, settings and seeds."""

    def __init__(self, folds, cases, thresholds, levels, args, prefetch=None):
        self.folds, self.cases, self.thresholds, self.levels, self.args = folds, cases, thresholds, levels, args
        self.prefetch = prefetch    # prefetch(cases, thresholds): their windows made ahead (in parallel)
        self.pool, self.futures, self.prep_s = None, {}, {}
        self.nets: dict = {}        # fold -> network_data of the networks trained in workers
        if args.jobs > 1:
            self._submit_all()

    def _inputs(self, fi):
        t0 = time.perf_counter()
        if self.prefetch is not None:
            self.prefetch([self.cases[n] for n in self.folds[fi].train], self.thresholds[fi])
        inputs = fold_inputs([self.cases[n] for n in self.folds[fi].train], self.levels.model_for,
                             self.thresholds[fi], self.levels.cache, self.levels)
        self.prep_s[fi] = time.perf_counter() - t0
        return inputs

    def _submit_all(self) -> None:
        import concurrent.futures
        import multiprocessing

        from tqdm import tqdm

        cache = self.levels.cache
        self.pool = concurrent.futures.ProcessPoolExecutor(
            self.args.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_yield_to_parent)
        for fi in tqdm(range(len(self.folds)), desc="verifier windows", leave=False):
            self.futures[fi] = self.pool.submit(fit_in_worker, self._inputs(fi), self.args.epochs, fi,
                                                self.args.quick, cache.enabled, cache.root, self.args.verifier)

    def get(self, fi):
        """(classifier, policy, {policy label: smoothed F1 %}, seconds)."""
        cache = self.levels.cache
        if self.pool is None:
            inputs = self._inputs(fi)
            t0 = time.perf_counter()
            classifier, policy, table, _, _ = fit_classifier(inputs, self.args.epochs, fi, self.args.quick, cache,
                                                             self.args.verifier)
            return classifier, policy, table, self.prep_s[fi] + time.perf_counter() - t0
        net, policy, table, read, trained, secs = self.futures[fi].result()
        self.nets[fi] = net
        cache.hits, cache.misses = cache.hits + read, cache.misses + trained
        return network_from(*net), policy, table, self.prep_s[fi] + secs

    def close(self, wait: bool = True) -> None:
        """End the workers (``wait=False``: at once, the folds not started cancelled)."""
        if self.pool is not None:
            self.pool.shutdown(wait=wait, cancel_futures=True)
            self.pool = None


# the workers' niceness above this process's: the test cases run here are the
# run's longest chain, so the workers take the cores it leaves (our choice)
WORKER_NICENESS = 5


def _yield_to_parent() -> None:
    os.nice(WORKER_NICENESS)
