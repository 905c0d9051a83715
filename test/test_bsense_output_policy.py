"""What the BSense system outputs of its confirmed tracks (paper Section
3.4.2 and our coasting rule), how the evaluation chooses that policy on
out-of-fold scores, and TrajFormer's training split."""
import numpy as np
import pytest

from sense_nodes.core.bsense.clustering import Objects
from sense_nodes.core.bsense.imm_ukf import ORIGIN
from sense_nodes.core.bsense.stages import TrajectoryLevel
from sense_nodes.core.bsense.training import TrainConfig, split_windows
from sense_nodes.core.bsense.verification import OutputPolicy
from sense_nodes.eval.bsense_policy import (COAST_GRID, RULE_GRID, VERIFY_GRID, CaseTracks, PolicyCounter,
                                           choose_policy, policy_counts)

DT = 0.64


class _Scores:
    """A classifier that returns the scores of a list, one per call."""

    def __init__(self, scores):
        self.scores = list(scores)

    def predict_proba(self, windows):
        return np.full(len(windows), self.scores.pop(0) if self.scores else 0.0)


def _one(pos):
    d = pos - ORIGIN
    dop = float(d @ np.array([5.0, 0, 0]) / np.linalg.norm(d))
    return Objects(np.asarray(pos, float)[None], np.array([dop]), np.zeros((1, 5)), np.array([1]),
                   np.zeros(1, np.int64))


def _run(level, frames_with_detection, n_frames):
    """Output count per frame of one target flying east, detected on the given frames."""
    p0, v = np.array([400.0, 50.0, 70.0]), np.array([5.0, 0.0, 0.0])
    out = []
    for k in range(n_frames):
        objs = _one(p0 + v * DT * k) if k in frames_with_detection else Objects.empty()
        states = level.step(objs)
        out.append(len(level.output(states)))
    return out


def test_coasting_track_is_output_only_for_the_allowed_frames():
    detected = set(range(8))
    long = _run(TrajectoryLevel(classifier=_Scores([0.9] * 50), policy=OutputPolicy(0.5)), detected, 12)
    short = _run(TrajectoryLevel(classifier=_Scores([0.9] * 50), policy=OutputPolicy(0.5, coast_frames=1)),
                 detected, 12)
    assert long[5:8] == [1, 1, 1] and short[5:8] == [1, 1, 1]     # verified at its 6th observation
    assert long[8:12] == [1, 1, 1, 1]                             # coasts while the tracker keeps it
    assert short[8:12] == [1, 0, 0, 0]                            # one frame after its last detection


def test_hold_rule_drops_a_track_its_later_windows_call_false():
    scores = [0.9, 0.1, 0.1, 0.1, 0.1]
    once = _run(TrajectoryLevel(classifier=_Scores(scores), policy=OutputPolicy(0.5)), set(range(12)), 12)
    hold = _run(TrajectoryLevel(classifier=_Scores(scores), policy=OutputPolicy(0.5, "hold", memory=2)),
                set(range(12)), 12)
    assert once[5:] == [1] * 7                 # the paper's rule: verified for good by one window
    assert hold[5:8] == [1, 1, 0]              # mean of 0.9, 0.1 is 0.5; then 0.1, 0.1
    with pytest.raises(ValueError):
        OutputPolicy(0.5, "sometimes")


def _tracks(n_frames=20):
    """One true UAV with a track scored 0.9 and a false track scored 0.6
    coasting every other frame near nothing."""
    frames = []
    for k in range(n_frames):
        gt = np.array([[400.0 + k, 0, 50]])
        ids = np.array([1, 2])
        pos = np.array([[400.0 + k, 0, 50], [100.0, 300, 40]])
        misses = np.array([0, k % 2])
        score = np.array([0.9, 0.6 if k % 2 == 0 else np.nan])
        frames.append((gt, ids, pos, misses, score))
    return CaseTracks(frames)


def test_policy_choice_drops_the_false_track_by_threshold():
    rec = [_tracks()]
    assert policy_counts(rec, OutputPolicy(0.5)).fp == 20
    assert policy_counts(rec, OutputPolicy(0.5, coast_frames=0)).fp == 10
    assert policy_counts(rec, OutputPolicy(0.7)).fp == 0
    policy, table = choose_policy(rec, grid=(0.5, 0.7, 0.8), rules=("once",), coasts=(0, None), memories=(3,))
    assert policy.threshold >= 0.7 and table["once@0.8/coast0"] == 100.0
    assert table["once@0.5/coast-"] < table["once@0.5/coast0"] < 100.0


def test_training_split_keeps_every_true_window_and_holds_some_out():
    rng = np.random.default_rng(0)
    X = np.arange(1000, dtype=np.float32)[:, None, None]
    y = (np.arange(1000) % 10 == 0).astype(np.int64)
    Xt, yt, Xv, yv = split_windows(X, y, TrainConfig(negative_share=0.3, val_share=0.1), rng)
    assert len(Xv) == 100 and not set(Xv[:, 0, 0]) & set(Xt[:, 0, 0])
    assert yt.sum() + yv.sum() == 100                       # no true window dropped
    assert 0.25 < (yt == 0).sum() / (900 - (yv == 0).sum()) < 0.35    # a third of the other false ones
    Xa, ya, Xva, _ = split_windows(X, y, TrainConfig(), rng)
    assert len(Xa) == 1000 and len(Xva) == 0                # the defaults train on everything


def _outputs_by_replay(tracks: CaseTracks, policy: OutputPolicy):
    """CaseTracks.outputs as a frame-by-frame replay of the verdicts (the rule as the pipeline applies it)."""
    import collections

    recent = collections.defaultdict(lambda: collections.deque(maxlen=policy.memory))
    verified = set()
    for gt, ids, pos, misses, score in tracks.frames:
        show = np.zeros(len(ids), bool)
        for i, (tid, s) in enumerate(zip(ids, score)):
            if np.isfinite(s):
                if policy.rule == "once":
                    if s >= policy.threshold:
                        verified.add(tid)
                else:
                    recent[tid].append(s)
                    if np.mean(recent[tid]) >= policy.threshold:
                        verified.add(tid)
                    else:
                        verified.discard(tid)
            show[i] = tid in verified and (policy.coast_frames is None or misses[i] <= policy.coast_frames)
        yield gt, pos[show]


def test_outputs_from_verdict_values_are_the_frame_by_frame_replay():
    """Verdict values computed once per rule give, at every threshold, rule
    and coasting limit, exactly the outputs of replaying the verdicts."""
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(120):
        ids = np.sort(rng.choice(12, int(rng.integers(0, 8)), replace=False))
        score = np.round(rng.random(len(ids)), 2)
        score[rng.random(len(ids)) < 0.3] = np.nan
        frames.append((rng.normal(size=(int(rng.integers(0, 3)), 3)), ids, rng.normal(size=(len(ids), 3)),
                       rng.integers(0, 4, len(ids)), score))
    tracks = CaseTracks(frames)
    for rule in ("once", "hold"):
        for thr in (0.3, 0.5, 0.7, 0.99):
            for coast in (0, 2, None):
                policy = OutputPolicy(thr, rule, 3, coast)
                for (g1, o1), (g2, o2) in zip(tracks.outputs(policy), _outputs_by_replay(tracks, policy)):
                    np.testing.assert_array_equal(o1, o2)
                    np.testing.assert_array_equal(g1, g2)


def _random_tracks(rng, n_frames: int) -> CaseTracks:
    """Frames of 0-2 UAVs and 0-4 confirmed tracks, some near a UAV, with
    random misses and scores (NaN: no window scored)."""
    frames = []
    for _ in range(n_frames):
        gt = rng.uniform(0, 200, (rng.integers(0, 3), 3))
        k = int(rng.integers(0, 5))
        pos = rng.uniform(0, 200, (k, 3))
        for i in range(min(k, len(gt))):
            pos[i] = gt[i] + rng.normal(0, 6, 3)
        score = np.where(rng.random(k) < 0.3, np.nan, rng.random(k))
        frames.append((gt, rng.integers(1, 6, k), pos, rng.integers(0, 4, k), score))
    return CaseTracks(frames)


def test_policy_counter_counts_as_the_frame_by_frame_replay():
    rng = np.random.default_rng(3)
    records = [_random_tracks(rng, 60), _random_tracks(rng, 0), _random_tracks(rng, 45)]
    counter = PolicyCounter(records)
    for rule in RULE_GRID:
        for coast in COAST_GRID:
            for t in VERIFY_GRID[:4]:
                p = OutputPolicy(t, rule, 3, coast)
                a, b = policy_counts(records, p), counter.counts(p)
                assert (a.tp, a.fp, a.fn, a.frames) == (b.tp, b.fp, b.fn, b.frames)
                assert a.f1_pct == b.f1_pct or (np.isnan(a.f1_pct) and np.isnan(b.f1_pct))
