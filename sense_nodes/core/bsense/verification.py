"""Track verification by TrajFormer (BSense paper, Section 3.4.2): each
trajectory is evaluated in real time on its most recent W observations
"until it is verified as a true target and then output".

What is output is an :class:`OutputPolicy` (the paper gives the rule, not
its numbers; the values are our choices, chosen per fold on training data
by the evaluation):

* ``threshold``: the P(true) that verifies a track (the paper's softmax
  argmax is 0.5);
* ``rule``: ``"once"`` is the paper's - verified at the first window whose
  P(true) reaches the threshold, then output for good; ``"hold"`` keeps
  scoring a verified track and outputs it while the mean P(true) of its
  last ``memory`` windows reaches the threshold (a bird that one window made
  look like a UAV drops out again when its next windows do not);
* ``coast_frames``: a confirmed track without a detection this frame (the
  tracker coasts it on its prediction for a few frames, Section 3.4.1) is
  output only up to this many frames after its last detection (None: as
  long as it lives). A coasted prediction drifts from a turning target, and
  a false track that lost its detections keeps being output otherwise.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from .trajformer import features_of, history_windows

RULES = ("once", "hold")


@dataclass(frozen=True)
class OutputPolicy:
    """Which confirmed tracks are output (see the module doc)."""
    threshold: float = 0.5
    rule: str = "once"               # the defaults are the paper's rule (see PipelineConfig for the system's)
    memory: int = 3                  # windows averaged by the "hold" rule (our choice)
    coast_frames: int | None = None  # None: a coasting track is output while it lives

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.memory < 1:
            raise ValueError(f"memory must be >= 1, got {self.memory}")

    def shows(self, track) -> bool:
        """Whether a verified, confirmed ``track`` (or TrackState) is output
        this frame, given how long it has coasted."""
        return self.coast_frames is None or track.misses <= self.coast_frames


def verify_tracks(tracks, classifier, window: int, policy: OutputPolicy, origin) -> None:
    """Score the confirmed, associated tracks that have W observations and
    refresh ``track.score`` and ``track.verified`` in place. Under "once" a
    verified track is not scored again (only confirmed tracks can be output,
    so the others are not scored either: our choice, it saves time); under
    "hold" its verdict follows the mean of its last ``memory`` scores."""
    hold = policy.rule == "hold"
    todo = [t for t in tracks
            if t.confirmed and t.associated and (hold or not t.verified) and len(t.history) >= window]
    if not todo:
        return
    p = classifier.predict_proba(history_windows(todo, window, origin, features_of(classifier)))
    for t, s in zip(todo, p):
        t.score = float(s)
        if hold:
            if t.recent is None:
                t.recent = collections.deque(maxlen=policy.memory)
            t.recent.append(float(s))
            t.verified = float(np.mean(t.recent)) >= policy.threshold
        elif s >= policy.threshold:
            t.verified = True


def default_verifier_path():
    """The verifier the package ships and uses by default: the boosted trees
    (:mod:`.boosted`), chosen over TrajFormer by the evaluation's figures on
    the library's cases (``sense eval bsense --verifier``)."""
    from .boosted import BOOSTED_CHECKPOINT

    return BOOSTED_CHECKPOINT


def load_classifier(path, device: str = "cpu"):
    """The track verifier stored at ``path``, by the kind its file says
    (read once): a TrajFormer (on ``device``) or boosted trees
    (:mod:`.boosted`, numpy on the CPU). Raises CheckpointError naming the
    file when neither."""
    from sense_nodes.core import checkpoint as ckpt

    from . import boosted, trajformer

    accept = {trajformer.CHECKPOINT_KIND: trajformer.CHECKPOINT_VERSION,
              boosted.CHECKPOINT_KIND: boosted.CHECKPOINT_VERSION}
    ck = ckpt.load_any_checkpoint(path, accept, what="a track verifier (" + " or ".join(f"'{k}'" for k in accept) + ")")
    if ck.kind == boosted.CHECKPOINT_KIND:
        return boosted.from_checkpoint(ck)
    return trajformer.from_checkpoint(ck, device)


def verifier_name(classifier) -> str:
    """'boosted' or 'trajformer': which verifier ``classifier`` is (None: 'none')."""
    from .boosted import BoostedVerifier

    if classifier is None:
        return "none"
    return "boosted" if isinstance(classifier, BoostedVerifier) else "trajformer"
