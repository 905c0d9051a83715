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


def load_case(name: str, seed=None, site_seed=None, max_frames: int = 0, spec=None) -> CaseData:
    from sense_nodes.data.bs_sim import library
    from sense_nodes.data.bs_sim.scenario import Scenario

    sp = spec if spec is not None else library.spec(name, seed, site_seed)
    sc = Scenario(sp)
    n = len(sc) if not max_frames else min(len(sc), max_frames)
    return CaseData(sp.name, sp.family, sp.traj_type, int(sp.day), [sc.frame(k) for k in range(n)], sc.dt)


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
    (:func:`calibration_spec`) and kept."""

    def __init__(self, seed=None, site_seed=None):
        self.seed, self.site_seed = seed, site_seed
        self.models: dict = {}

    def __call__(self, case: CaseData, site_kind: str = "A"):
        from sense_nodes.core.bsense.noise_model import NoiseModel

        key = (case.day, site_kind)
        if key not in self.models:
            calib = load_case("", spec=calibration_spec(case.day, self.seed, self.site_seed, site_kind))
            self.models[key] = NoiseModel().fit([f.points for f in calib.frames])
        return self.models[key]
