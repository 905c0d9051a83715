"""Ghost returns (BSense paper, Sections 1 and 3.3).

* Multipath ghosts: a vehicle's echo that comes back via a building facade.
  The paper: they "often appear as mid-air points at altitudes of 100-300 m"
  and fail the velocity-consistency check. Here the ghost is seen in the
  direction of the reflection point on the facade at half the total path
  length, its Doppler is the true rate of that path, and its apparent altitude
  (100-300 m) and a range offset from switching reflecting facets wander from
  frame to frame (AR(1) processes, our choice), so its displacement does not
  match its Doppler. A ghost lives as long as its vehicle drives along
  reflecting facades, so it draws false trajectories hundreds of metres long.
* Sidelobe ghosts: a strong direct echo (in practice a moving vehicle's) also
  shows at a sidelobe angle in azimuth or elevation, at the same range and
  Doppler, weaker by the sidelobe level (13.3 dB for a uniform array, more
  with tapering). The paper: false objects are "typically caused by
  multi-path effects and sidelobe interference from moving vehicles" (3.3).
  Static clutter's sidelobes are not modelled: clutter suppression removes
  them with their parent, whose residual is already near the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sensor import from_polar, in_fov, measure, snr_db, swerling1, to_polar
from .site import OVERPASS, Site

FACADE_REACH_M = 250.0     # a facade this close to a vehicle can reflect it (our choice)
MULTIPATH_LOSS_DB = 21.0   # mean extra loss of the reflected path (our choice)
GHOSTS_PER_VEHICLE = 2     # reflecting buildings per vehicle (our choice)
# A strong direct echo shows in a sidelobe in 60% of frames (our choice: about
# ten sidelobe ghosts a frame).
SIDELOBE_PROB = 0.6
# The paper puts its noise down to three sources, clutter, multipath and
# sidelobe ghosts, so thermal false alarms are a small share: about 8.5 M
# range-Doppler-beam cells x Pfa 1.8e-7 (our choice).
FALSE_ALARMS_PER_FRAME = 1.5


@dataclass
class GhostStates:
    on: np.ndarray          # (F, V) bool: the vehicle's ghost exists
    alt: np.ndarray         # (F, V) apparent altitude, m
    offset: np.ndarray      # (F, V) range offset, m
    loss_db: np.ndarray     # (V,)


def ghost_states(n_frames: int, n_vehicles: int, rng: np.random.Generator,
                 p_stay: float = 0.985, p_start: float = 0.15) -> GhostStates:
    F, V = n_frames, n_vehicles
    on = np.zeros((F, V), bool)
    alt = np.zeros((F, V))
    off = np.zeros((F, V))
    u = rng.random((F, V))
    ea = rng.normal(0, 6.0, (F, V))
    eo = rng.normal(0, 2.5, (F, V))
    state = rng.random(V) < p_start / (p_start + 1 - p_stay)
    a = rng.uniform(100, 300, V)
    o = np.zeros(V)
    for k in range(F):
        state = np.where(state, u[k] < p_stay, u[k] < p_start)
        a = np.clip(200 + 0.95 * (a - 200) + ea[k], 100, 300)
        o = 0.8 * o + eo[k]
        on[k], alt[k], off[k] = state, a, o
    return GhostStates(on=on, alt=alt, offset=off, loss_db=rng.normal(MULTIPATH_LOSS_DB, 3.0, V))


def multipath(site: Site, vpos, vvel, states: GhostStates, k: int, rng: np.random.Generator):
    """Multipath ghosts of the vehicles of frame ``k``: (pos, doppler, snr,
    vehicle index). Each vehicle has ``GHOSTS_PER_VEHICLE`` ghost channels,
    one per nearest reflecting building (channel c: vehicle c % V, the
    (c // V)-th nearest building)."""
    sensor = site.sensor
    o = sensor.origin
    V = vpos.shape[0]
    chan = np.flatnonzero(states.on[k])
    boxes = site.boxes[site.box_material != OVERPASS]
    if chan.size == 0 or boxes.shape[0] < GHOSTS_PER_VEHICLE:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, int)
    veh, rank = chan % V, chan // V
    v = vpos[veh]
    # nearest point of each building footprint to each vehicle
    px = np.clip(v[:, None, 0], boxes[None, :, 0], boxes[None, :, 1])
    py = np.clip(v[:, None, 1], boxes[None, :, 2], boxes[None, :, 3])
    d = np.hypot(px - v[:, None, 0], py - v[:, None, 1])
    order = np.argpartition(d, GHOSTS_PER_VEHICLE - 1, axis=1)[:, :GHOSTS_PER_VEHICLE]
    od = np.take_along_axis(d, order, axis=1)
    order = np.take_along_axis(order, np.argsort(od, axis=1), axis=1)
    j = order[np.arange(chan.size), rank]
    near = d[np.arange(chan.size), j] < FACADE_REACH_M
    chan, veh, v, j = chan[near], veh[near], v[near], j[near]
    if chan.size == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, int)
    f = np.stack([px[near, j], py[near, j], 0.5 * boxes[j, 5]], 1)
    act = chan
    r_ov = np.linalg.norm(v - o, axis=1)
    r_vf = np.linalg.norm(v - f, axis=1)
    r_fo = np.linalg.norm(f - o, axis=1)
    r_app = 0.5 * (r_ov + r_vf + r_fo) + states.offset[k, act]
    vel = vvel[veh]
    u_ov = (v - o) / np.maximum(r_ov, 1e-9)[:, None]
    u_fv = (v - f) / np.maximum(r_vf, 1e-9)[:, None]
    dop = 0.5 * (np.einsum("ij,ij->i", u_ov, vel) + np.einsum("ij,ij->i", u_fv, vel))
    az = np.arctan2(f[:, 1], f[:, 0])
    el = np.arcsin(np.clip((states.alt[k, act] - sensor.height_m) / np.maximum(r_app, 1.0), -1, 1))
    snr = swerling1(snr_db(r_app, 10.0, sensor) - states.loss_db[act] - 3.0, rng)
    ok = (snr >= sensor.threshold_db) & in_fov(r_app, az, el, sensor) & (np.abs(dop) >= sensor.notch_mps)
    if not ok.any():
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, int)
    true = from_polar(r_app[ok], az[ok], el[ok], sensor)
    mpos, mdop = measure(true, dop[ok], snr[ok], rng, sensor)
    return mpos, mdop, snr[ok], veh[ok]


def sidelobes(site: Site, pos, dop, snr, rng: np.random.Generator, prob: float = SIDELOBE_PROB):
    """Sidelobe ghosts of the strong returns ``pos``/``dop``/``snr`` (measured):
    (pos, doppler, snr, index of the parent return)."""
    sensor = site.sensor
    if pos.shape[0] == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, int)
    sll = 13.3 + np.abs(rng.normal(0, 5.0, pos.shape[0]))
    gsnr = snr - sll
    cand = np.flatnonzero((gsnr >= sensor.threshold_db) & (rng.random(pos.shape[0]) < prob))
    if cand.size == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, int)
    r, az, el = to_polar(pos[cand], sensor)
    n = cand.size
    in_az = rng.random(n) < 0.6
    order = rng.choice([1.43, 2.46], n, p=[0.75, 0.25])
    sign = rng.choice([-1.0, 1.0], n)
    az = az + np.where(in_az, sign * order * sensor.beamwidth_az_rad, 0.0)
    el = el + np.where(in_az, 0.0, np.abs(order * sensor.beamwidth_el_rad))  # elevation sidelobes lift points mid-air
    ok = in_fov(r, az, el, sensor)
    cand, r, az, el = cand[ok], r[ok], az[ok], el[ok]
    true = from_polar(r, az, el, sensor)
    mpos, mdop = measure(true, dop[cand], gsnr[cand], rng, sensor)
    return mpos, mdop, gsnr[cand], cand


def false_alarms(site: Site, rng: np.random.Generator, mean: float = FALSE_ALARMS_PER_FRAME):
    """CFAR false alarms: uniform in range, angle and Doppler, just above the
    threshold, ``mean`` a frame on average."""
    sensor = site.sensor
    n = int(rng.poisson(mean))
    r = rng.uniform(sensor.min_range_m, sensor.max_range_m, n)
    az = rng.uniform(-1, 1, n) * np.radians(sensor.hfov_deg) / 2
    el = rng.uniform(np.radians(sensor.el_min_deg), np.radians(sensor.el_max_deg), n)
    pos = from_polar(r, az, el, sensor)
    dop = rng.uniform(-25, 25, n)
    snr = sensor.threshold_db + rng.exponential(1.5, n)
    return pos, dop, snr
