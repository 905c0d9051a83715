"""The BSense evaluation's data: library cases (frames and truth) and the
noise fingerprints of each case's day, fitted on that day's UAV-free frames
(the N_u frames of a Section 3.2.4 update)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sense_nodes.bs_sensor import UAV


@dataclass
class CaseData:
    name: str
    family: str
    traj_type: str
    day: int
    frames: list
    dt: float
    source: str = ""     # the scenario spec and frame cap that drew the frames (a cache key)


def load_case(name: str, seed=None, site_seed=None, max_frames: int = 0, spec=None) -> CaseData:
    from sense_nodes.data.bs_sim import library
    from sense_nodes.data.bs_sim.scenario import Scenario

    sp = spec if spec is not None else library.spec(name, seed, site_seed)
    sc = Scenario(sp)
    n = len(sc) if not max_frames else min(len(sc), max_frames)
    return CaseData(sp.name, sp.family, sp.traj_type, int(sp.day), [sc.frame(k) for k in range(n)], sc.dt,
                    f"{sp!r} frames={n}")


def uav_truth(frame) -> tuple[np.ndarray, np.ndarray]:
    """(ids, positions) of the UAVs in flight in this frame (visible or not:
    the paper's recall counts the frames whose points are missing)."""
    t = frame.truth[frame.truth["object_class"] == UAV]
    return t["id"].astype(int), t["position"].reshape(-1, 3)


def calibration_spec(day: int, seed=None, site_seed=None, site_kind: str = "A", n_frames: int = 700):
    """UAV-free frames of one day (the N_u frames of a model update)."""
    from sense_nodes.data.bs_sim import library

    base = library.spec("uav_free_calib", seed, site_seed)
    return dataclasses.replace(base, name=f"uav_free_day{day}{site_kind}", n_frames=n_frames, day=float(day),
                               site_kind=site_kind,
                               site_seed=base.site_seed if site_kind == "A" else (1 if site_seed is None else site_seed))


class DayModels:
    """``model_for(case, site_kind="A")``: the noise fingerprints of the
    case's day and site, fitted once on that day's UAV-free frames
    (:func:`calibration_spec`) with ``config`` (a NoiseModelConfig; the
    paper's by default) and kept (in ``cache`` too, a
    :class:`~sense_nodes.eval.bsense_cache.StageCache`, when given).
    ``key_of(model)``: the digest of a model's file, the cache key of what
    is computed with it."""

    def __init__(self, seed=None, site_seed=None, cache=None, config=None):
        from sense_nodes.core.bsense.noise_model import NoiseModelConfig

        self.seed, self.site_seed, self.cache = seed, site_seed, cache
        self.config = config or NoiseModelConfig()
        self.models: dict = {}
        self.keys: dict = {}

    def __call__(self, case: CaseData, site_kind: str = "A"):
        key = (case.day, site_kind)
        if key not in self.models:
            spec = calibration_spec(case.day, self.seed, self.site_seed, site_kind)
            self.models[key], self.keys[key] = self._fit(spec)
        return self.models[key]

    def key_of(self, model) -> str:
        for k, m in self.models.items():
            if m is model:
                return self.keys[k]
        raise KeyError("a noise model this DayModels did not fit")

    def _fit(self, spec):
        """(model, digest of its file): from the cache, else fitted."""
        import tempfile
        from pathlib import Path

        from sense_nodes.core.bsense.noise_model import NoiseModel, NoiseModelFileError
        from sense_nodes.eval.bsense_cache import digest

        path = None
        if self.cache is not None and self.cache.enabled:
            path = self.cache.path("model", digest(self.cache.point_code, repr(spec), repr(self.config)))
            if path.exists():
                try:
                    model = NoiseModel.load(path)
                    self.cache.hits += 1
                    return model, digest(path.read_bytes())
                except NoiseModelFileError as exc:
                    print(f"{exc}: fitting the model again")
        if self.cache is not None:
            self.cache.misses += 1
        calib = load_case("", spec=spec)
        model = NoiseModel(self.config).fit([f.points for f in calib.frames])
        with tempfile.TemporaryDirectory() as tmp:   # the key is the file's bytes, written or not
            data = model.save(path or Path(tmp) / "model.npz").read_bytes()
        return model, digest(data)
