"""What a running noise filter keeps for refits (Section 3.2.4), made safe
against the input it cannot trust.

The paper refits the fingerprints every T_u from the last N_u frames. A
deployment must not let one message decide that: a frame stamped decades
ahead would otherwise trigger a refit on whatever is buffered and push the
next one out of reach, and a 10^6-point frame would multiply the buffer's
size. So:

- :class:`StampGuard` admits a frame to the buffer only when its stamp moves
  forward by at most ``max_jump_s``; a stream that really restarted (a bag
  looped, a clock reset) is followed again after ``resync_frames`` frames
  that agree with each other;
- :class:`RefitBuffer` holds at most ``n_frames`` frames of at most
  ``max_points`` points each (a seeded uniform subsample of larger frames),
  so its size is bounded in bytes, not only in frames;
- :func:`refit_refusal` says why a freshly fitted model must not replace
  the current one (non-finite values, too few cubes, too few Gaussian
  cubes): a refit on junk never overwrites a good model.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from .noise_model import NoiseModel


class StampGuard:
    """Accepts stamps that move forward by at most ``max_jump_s``.

    ``accept(stamp_ns)`` is True for the first stamp and for each later one
    within (last, last + max_jump]; a stamp that goes backwards or jumps
    further is refused and counted. ``resync_frames`` consecutive refused
    stamps that move forward within the bound among themselves become the
    new timeline (the last of them is accepted)."""

    def __init__(self, max_jump_s: float = 60.0, resync_frames: int = 5):
        self.max_jump_ns = int(max_jump_s * 1e9)
        self.resync_frames = int(resync_frames)
        self.last_ns: int | None = None
        self.backwards = 0
        self.jumps = 0
        self._candidate: list[int] = []

    def accept(self, stamp_ns: int) -> bool:
        stamp_ns = int(stamp_ns)
        if self.last_ns is None or 0 < stamp_ns - self.last_ns <= self.max_jump_ns:
            self.last_ns = stamp_ns
            self._candidate.clear()
            return True
        if stamp_ns <= self.last_ns:
            self.backwards += 1
        else:
            self.jumps += 1
        if self._candidate and not 0 < stamp_ns - self._candidate[-1] <= self.max_jump_ns:
            self._candidate.clear()
        self._candidate.append(stamp_ns)
        if len(self._candidate) >= self.resync_frames:
            self.last_ns = stamp_ns
            self._candidate.clear()
            return True
        return False


@dataclass(frozen=True)
class BufferedFrame:
    stamp_ns: int
    points: np.ndarray


class RefitBuffer:
    """The last ``n_frames`` frames, each thinned to ``max_points`` points."""

    def __init__(self, n_frames: int, max_points: int = 2000, seed: int = 0):
        self.frames: collections.deque[BufferedFrame] = collections.deque(maxlen=int(n_frames))
        self.max_points = int(max_points)
        self.thinned = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, stamp_ns: int, points: np.ndarray) -> None:
        if len(points) > self.max_points:
            keep = np.sort(self._rng.choice(len(points), self.max_points, replace=False))
            points = points[keep]
            self.thinned += 1
        self.frames.append(BufferedFrame(int(stamp_ns), np.array(points, copy=True)))

    def recent(self, n: int) -> list[BufferedFrame]:
        return list(self.frames)[-int(n):] if n > 0 else []

    def nbytes(self) -> int:
        return sum(f.points.nbytes for f in self.frames)


def refit_refusal(model: NoiseModel, min_cubes: int = 10, min_gaussian_pct: float = 50.0) -> str | None:
    """Why ``model`` must not replace the current one, or None when it may.

    A fit on UAV-free clutter leaves most cubes jointly Gaussian (the
    simulator's sites: 75-86 %); a fit on junk frames leaves few cubes or
    none Gaussian. ``min_gaussian_pct`` is our choice, well below the
    normal range."""
    s = model.summary()
    arrays = (model.mu, model.sd, model.mean, model.prec, model.tau)
    if not all(np.isfinite(a).all() for a in arrays):
        return "the fitted fingerprints hold non-finite values"
    if s["cubes"] < min_cubes:
        return f"only {s['cubes']} cubes had enough noise points to model (at least {min_cubes} needed)"
    if s["gaussian_pct"] < min_gaussian_pct:
        return (f"only {s['gaussian_pct']:.0f} % of the {s['cubes']} cubes are jointly Gaussian "
                f"(at least {min_gaussian_pct:.0f} % needed): the frames do not look like noise")
    return None


class UavTruth:
    """Which frames the source's truth shows free of UAVs, by stamp: a fit
    never learns noise from a UAV where truth exists. ``known`` is False
    until any truth arrived (a real site has none: every frame counts)."""

    def __init__(self, max_frames: int):
        self.uav_in_frame: dict[int, bool] = {}
        self.max_frames = int(max_frames)
        self.excluded = 0

    @property
    def known(self) -> bool:
        return bool(self.uav_in_frame)

    def record(self, stamp_ns: int, uav_visible: bool) -> None:
        self.uav_in_frame[int(stamp_ns)] = bool(uav_visible)
        while len(self.uav_in_frame) > self.max_frames:
            self.uav_in_frame.pop(next(iter(self.uav_in_frame)))

    def free(self, frames) -> list:
        """The frames a fit may use: with truth, only those it shows free of
        UAVs (a frame without its truth counts as unknown and is left out)."""
        if not self.known:
            return list(frames)
        keep = [f for f in frames if self.uav_in_frame.get(f.stamp_ns) is False]
        self.excluded += len(frames) - len(keep)
        return keep

    def count_free(self, frames) -> int:
        return sum(1 for f in frames if self.uav_in_frame.get(f.stamp_ns) is False)


class RefitSchedule:
    """Section 3.2.4's automatic update: due when T_u has passed on the
    caller's clock and N_u new frames arrived since the last refit."""

    def __init__(self):
        self.last_ns: int | None = None
        self.new_frames = 0

    def frame_added(self) -> None:
        self.new_frames += 1

    def due(self, now_ns: int, interval_s: float, n_frames: int) -> bool:
        if self.last_ns is None:
            self.last_ns = int(now_ns)
            return False
        return (now_ns - self.last_ns) * 1e-9 >= interval_s and self.new_frames >= n_frames

    def done(self, now_ns: int) -> None:
        self.last_ns, self.new_frames = int(now_ns), 0
