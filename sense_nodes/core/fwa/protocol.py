"""The fusion centre's two-round protocol (Fig. 3 and Fig. 5), in plain
Python so it is testable without ROS; the node feeds it messages and a
clock and publishes what it returns.

Per measurement instant (``key``, e.g. the stamp in ns):

1. round 1: every BS reports the embeddings of its pairs. When all
   expected BSs have reported, or ``timeout_s`` after the first report,
   the centre decides on the pairs it has (a silent BS is left out: random
   pair sampling in training is what makes a partial bag usable).
   -> :class:`Detected` (always) and, when a UAV is declared and pairs are
   selected, a selection to send to the BSs.
2. round 2: the BSs owning selected pairs answer with coarse positions and
   features. When all of them answered, or ``timeout_s`` after the
   selection, the centre fuses what arrived. -> :class:`Located`.

A centre whose ``second_round`` is False (the one-round detector of
:mod:`.calibration`) stops after round 1: its decision carries the position.

Instants older than ``keep`` times the timeout are forgotten.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sense_nodes.core.fwa.pipeline import Decision, FusionCentre


@dataclass
class Detected:
    key: int
    decision: Decision
    heard: list[str]           # BSs whose round-1 report was used
    missing: list[str]         # BSs left out (timed out)


@dataclass
class Located:
    key: int
    decision: Decision
    position: np.ndarray | None  # None when no BS answered
    answered: list[str]
    missing: list[str]


@dataclass
class _Frame:
    t_first: float
    embeddings: dict = field(default_factory=dict)  # pair -> h
    reported: set = field(default_factory=set)
    decision: Decision | None = None
    t_selected: float = 0.0
    owners: set = field(default_factory=set)        # BSs asked in round 2
    answers: dict = field(default_factory=dict)     # pair -> (p, v)
    answered: set = field(default_factory=set)
    done: bool = False


class CentreProtocol:
    def __init__(self, centre: FusionCentre, bs_ids, owner_of, timeout_s: float = 0.5, keep: float = 10.0):
        """``bs_ids``: the BSs expected; ``owner_of(pair) -> bs_id``."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 (got {timeout_s})")
        self.centre = centre
        self.bs_ids = list(bs_ids)
        self.owner_of = owner_of
        self.timeout_s = float(timeout_s)
        self.keep = float(keep)
        self.frames: dict[int, _Frame] = {}

    def on_round1(self, key: int, bs_id: str, embeddings: dict, now: float) -> list:
        fr = self.frames.setdefault(key, _Frame(now))
        if fr.decision is not None or bs_id in fr.reported:
            return []  # late or repeated report: the decision is taken
        fr.reported.add(bs_id)
        fr.embeddings.update(embeddings)
        return self.poll(now)

    def on_round2(self, key: int, bs_id: str, answers: dict, now: float) -> list:
        fr = self.frames.get(key)
        if fr is None or fr.decision is None or fr.done or bs_id not in fr.owners:
            return []
        sel = set(fr.decision.selected)
        fr.answers.update({k: v for k, v in answers.items() if k in sel})
        fr.answered.add(bs_id)
        return self.poll(now)

    def poll(self, now: float) -> list:
        """Decide / fuse every instant whose round is complete or timed out."""
        out = []
        for key in sorted(self.frames):
            fr = self.frames[key]
            if fr.decision is None:
                if fr.reported >= set(self.bs_ids) or now - fr.t_first >= self.timeout_s:
                    out += self._decide(key, fr, now)
            elif not fr.done and (fr.answered >= fr.owners or now - fr.t_selected >= self.timeout_s):
                out.append(self._fuse(key, fr))
        for key in [k for k, f in self.frames.items() if now - f.t_first > self.keep * self.timeout_s
                    or (f.done and now - f.t_first > self.timeout_s)]:
            del self.frames[key]
        return out

    def _decide(self, key, fr, now):
        heard = sorted(fr.reported)
        missing = [b for b in self.bs_ids if b not in fr.reported]
        if not fr.embeddings:
            fr.done = True
            return []
        fr.decision = self.centre.detect(fr.embeddings)
        out = [Detected(key, fr.decision, heard, missing)]
        if fr.decision.present and fr.decision.selected and getattr(self.centre, "second_round", True):
            fr.owners = {self.owner_of(p) for p in fr.decision.selected}
            fr.t_selected = now
        else:
            fr.done = True
        return out

    def _fuse(self, key, fr):
        fr.done = True
        pos = self.centre.localize(fr.answers)
        return Located(key, fr.decision, pos, sorted(fr.answered), sorted(fr.owners - fr.answered))

    def pending_selection(self, key: int) -> list[int]:
        fr = self.frames.get(key)
        return [] if fr is None or fr.decision is None else list(fr.decision.selected)
