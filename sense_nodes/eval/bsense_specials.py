"""The special cases of the BSense evaluation (Section 4.5): the UAV-free
15-minute case (false-positive rate), the multi-UAV case and the cross-site
case (its own site's fingerprints, no other retuning).

None of them is in a fold (:func:`~sense_nodes.data.bs_sim.library.folds`),
so every fold's system scores them unseen. One case through one fold's
system gives a figure that swings with that one draw, so each kind is drawn
``n_draws`` times: draw ``j`` is the library case drawn with
:func:`draw_seed` (draw 0 is the case of the eval's own ``--seed``, the
case a single-draw evaluation scores) and scored through fold
``j mod n_folds``'s full system (its object thresholds, TrajFormer and
output policy), its basic pipeline beside. A kind's headline figure pools
its draws (the sum of their counts, then the figure), like the path cases'
figures pool the test cases; the lowest and highest draw and each draw's
own figure are reported beside it.
"""
from __future__ import annotations

import collections
import time
import zlib
from dataclasses import dataclass

import numpy as np

from sense_nodes.core.bsense.verification import OutputPolicy
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import load_case
from sense_nodes.eval.bsense_casework import special_counts
from sense_nodes.eval.bsense_policy import DEFAULT_VERIFY_THRESHOLD
from sense_nodes.eval.bsense_stage import run_stage

# kind -> (library case, site whose fingerprints it uses, the figure each draw
# reports: its key and the DetectionCounts property it reads)
SPECIALS = {"multi_uav": ("multi_uav", "A", ("f1_pct", "f1_pct")),
            "cross_site": ("cross_site", "B", ("f1_pct", "f1_pct")),
            "uav_free": ("uav_free_eval", "A", ("fp_rate_pct", "fp_frame_rate_pct"))}
# the kinds scored in the case worker when there is one (the UAV-free draws run
# in this process meanwhile, so the specials use both processes)
WORKER_KINDS = ("multi_uav", "cross_site")


def draw_seed(kind: str, seed: int | None, j: int) -> int | None:
    """The scenario seed of draw ``j`` of a special ``kind`` under the eval's
    ``seed``: draw 0 is ``seed`` itself (None: the library's default case),
    later draws a seed derived from (kind, seed, j) alone, so the same
    ``--seed`` always draws the same cases."""
    if j == 0:
        return seed
    return zlib.crc32(f"special {kind} draw {j} of seed {seed}".encode()) & 0x7FFFFFFF


@dataclass
class SpecialDraw:
    """One draw of a special kind: the fold whose system scored it, the
    scenario seed, and its counts by key (``<kind>`` the full system,
    ``<kind>_basic`` the basic pipeline, ``uav_free_default`` the paper's
    output rule on the UAV-free case)."""
    kind: str
    draw: int
    fold: int
    seed: int | None
    counts: dict


def score_specials(systems: dict, nets: dict, levels, runner, seed, site_seed, max_frames: int,
                   n_draws: int) -> list:
    """Every draw of every special kind (:class:`SpecialDraw`, by kind then
    draw). ``systems``: fold -> (classifier, thresholds, output policy);
    ``nets``: fold -> (network config, weights) for the case worker of
    ``runner`` (a CaseRunner), which takes the multi-UAV and cross-site
    draws while this process runs the UAV-free ones; without a worker (or a
    fold's network) they run here after them."""
    n_folds = len(systems)
    t0, far = time.perf_counter(), []
    for j in range(n_draws):
        fi = j % n_folds
        _, thresholds, policy = systems[fi]
        for kind in WORKER_KINDS:
            name, site_kind, _ = SPECIALS[kind]
            s = draw_seed(kind, seed, j)
            case = load_case(name, s, site_seed, max_frames)
            far.append((kind, j, fi, s, case, runner.special(case, thresholds, nets.get(fi), policy, site_kind)))
    t1, draws = time.perf_counter(), []
    for j in range(n_draws):
        fi = j % n_folds
        classifier, thresholds, policy = systems[fi]
        s = draw_seed("uav_free", seed, j)
        free = load_case(SPECIALS["uav_free"][0], s, site_seed, max_frames)
        model, clusters = levels.model_for(free), levels(free)
        counts = {key: run_stage(free, 5, model, thresholds, classifier, p, clusters=clusters).det
                  for key, p in (("uav_free", policy), ("uav_free_default", OutputPolicy(DEFAULT_VERIFY_THRESHOLD)))}
        draws.append(SpecialDraw("uav_free", j, fi, s, counts))
    t2 = time.perf_counter()
    for kind, j, fi, s, case, future in far:
        classifier, thresholds, policy = systems[fi]
        full, basic = (future.result() if future is not None
                       else special_counts(case, levels, thresholds, classifier, policy, SPECIALS[kind][1]))
        draws.append(SpecialDraw(kind, j, fi, s, {kind: full, f"{kind}_basic": basic}))
    t3 = time.perf_counter()
    print(f"special cases: {t1 - t0:.0f} s drawing the {', '.join(WORKER_KINDS)} cases, {t2 - t1:.0f} s on the "
          f"UAV-free draws here, then {t3 - t2:.0f} s for the others to finish", flush=True)
    return sorted(draws, key=lambda d: (list(SPECIALS).index(d.kind), d.draw))


def pooled(draws: list) -> dict:
    """Each count key summed over the draws (a defaultdict: a kind without
    draws scores as empty, its figures NaN)."""
    out = collections.defaultdict(M.DetectionCounts)
    for d in sorted(draws, key=lambda d: (d.kind, d.draw)):
        for key, counts in d.counts.items():
            out[key] = out[key].merge(counts)
    return out


def spread_figures(draws: list) -> dict:
    """Per kind, its lowest and highest draw (``<kind>_<figure>`` with
    ``_min``/``_max`` before ``_pct``, NaN draws left out) and each draw's
    figure and fold (``<kind>_draw<j>_<figure>``, ``<kind>_draw<j>_fold``)."""
    f = {}
    for kind, (_, _, (figure, prop)) in SPECIALS.items():
        mine = sorted((d for d in draws if d.kind == kind), key=lambda d: d.draw)
        values = [getattr(d.counts[kind], prop) for d in mine]
        for d, v in zip(mine, values):
            f[f"{kind}_draw{d.draw}_{figure}"] = v
            f[f"{kind}_draw{d.draw}_fold"] = d.fold
        known = [v for v in values if not np.isnan(v)]
        stem = figure[:-len("_pct")]
        f[f"{kind}_{stem}_min_pct"] = min(known) if known else float("nan")
        f[f"{kind}_{stem}_max_pct"] = max(known) if known else float("nan")
    return f
