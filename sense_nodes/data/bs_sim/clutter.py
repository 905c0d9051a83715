"""Static background clutter (BSense paper, Sections 1 and 3.2).

The first noise source the paper names: returns of buildings, trees, terrain
and the river that survive the base station's clutter suppression because of
small vibrations and Doppler leakage, with Doppler "up to 3.2 m/s" (3.2).

A site holds clutter *cells* (scatterers on facades facing the antenna, roofs,
tree canopies, the water surface, open ground, the overpass). Each cell
belongs to a *region* (one structure, a river reach or a terrain patch) and
fires in a frame with its own probability, so some cells are there almost
every frame and others flicker. A fired cell's latent powers come from its
region's fingerprint (:mod:`.fingerprint`): a Gaussian over (residual RCS dB,
noise offset, clutter offset), or for about one region in sixteen a
two-part mixture (part of the paper's non-Gaussian cubes). Fingerprint means drift
as a random walk of 0.35 dB per day (our choice), which is why the paper
refits its model every two days (3.2.4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sensor import in_fov, measure, snr_db, to_polar
from .site import BUILDING, FACTORY, OVERPASS, RIVER, TERRAIN, TREE, Site

MAX_LEAK_MPS = 3.2          # paper, Section 3.2
DRIFT_DB_PER_DAY = 0.35     # our choice
MAX_DAYS = 16
# residual RCS (dB m^2) after clutter suppression and Doppler leakage scale (m/s)
# per material: our choices, set so that residual clutter and a 0.01 m^2 UAV
# overlap in SNR (the paper's Figure 2).
_MAT_RCS_DB = {BUILDING: -20.0, FACTORY: -19.0, TREE: -21.0, RIVER: -21.5, TERRAIN: -21.0, OVERPASS: -19.5}
_MAT_LEAK = {BUILDING: 1.0, FACTORY: 1.4, TREE: 1.9, RIVER: 1.6, TERRAIN: 0.8, OVERPASS: 2.4}
# One region in about sixteen is a two-part mixture: the paper finds over 75%
# of cubes Gaussian and puts the failures mostly down to ghost points, so the
# clutter itself is mostly Gaussian (our choice; twice the fraction leaves
# only about half the cubes Gaussian, against the paper's three quarters).
NON_GAUSSIAN_FRACTION = 0.06
# Clutter points per frame: the paper's 168 noise points a frame minus the
# ghosts, false alarms and vehicles of the other modules (about 65 a frame).
CLUTTER_POINTS_PER_FRAME = 85.0


@dataclass
class ClutterModel:
    pos: np.ndarray          # (M, 3) cell positions
    region: np.ndarray       # (M,) region index
    prob: np.ndarray         # (M,) firing probability per frame
    reg_material: np.ndarray  # (R,)
    reg_mean: np.ndarray     # (R, 3) latent mean (rcs dB, noise offset, clutter offset)
    reg_chol: np.ndarray     # (R, 3, 3)
    reg_mix: np.ndarray      # (R,) weight of the second component (0: Gaussian region)
    reg_shift: np.ndarray    # (R, 3) offset of the second component
    reg_leak: np.ndarray     # (R,) Doppler leakage scale
    reg_drift: np.ndarray    # (R, MAX_DAYS + 1, 3) cumulative drift of the mean

    @property
    def n_regions(self) -> int:
        return self.reg_mean.shape[0]

    def expected_points(self) -> float:
        return float(self.prob.sum())

    def sample(self, site: Site, rng: np.random.Generator, day: float = 0.0):
        """One frame of clutter: measured pos, doppler, SNR (dB), the region's
        noise and clutter offsets (dB) and the region of each detected point."""
        fire = rng.random(self.prob.shape[0]) < self.prob
        idx = np.flatnonzero(fire)
        reg = self.region[idx]
        lat = self._latent(reg, rng, day)
        true_pos = self.pos[idx]
        r = np.linalg.norm(true_pos - site.sensor.origin, axis=1)
        snr = snr_db(r, 10.0 ** (lat[:, 0] / 10.0), site.sensor) - lat[:, 1]
        keep = snr >= site.sensor.threshold_db
        idx, reg, lat, true_pos, snr = idx[keep], reg[keep], lat[keep], true_pos[keep], snr[keep]
        leak = self.reg_leak[reg]
        speed = site.sensor.notch_mps + np.abs(rng.standard_normal(idx.shape[0])) * leak
        vr = np.minimum(speed, MAX_LEAK_MPS) * rng.choice([-1.0, 1.0], idx.shape[0])
        pos, dop = measure(true_pos, vr, snr, rng, site.sensor, extended=True)
        dop = np.clip(dop, -MAX_LEAK_MPS, MAX_LEAK_MPS)
        return pos, dop, snr, lat[:, 1], lat[:, 2], reg

    def _latent(self, reg, rng, day):
        d0 = int(np.clip(np.floor(day), 0, MAX_DAYS - 1))
        f = float(np.clip(day - d0, 0.0, 1.0))
        drift = (1 - f) * self.reg_drift[reg, d0] + f * self.reg_drift[reg, d0 + 1]
        z = rng.standard_normal((reg.shape[0], 3))
        lat = self.reg_mean[reg] + drift + np.einsum("nij,nj->ni", self.reg_chol[reg], z)
        second = rng.random(reg.shape[0]) < self.reg_mix[reg]
        lat[second] += self.reg_shift[reg[second]]
        return lat


def build_clutter(site: Site, target_points: float = CLUTTER_POINTS_PER_FRAME) -> ClutterModel:
    """Clutter cells and region fingerprints of ``site`` (deterministic in the
    site's seed). Firing probabilities are scaled so that about
    ``target_points`` clutter points are detected per frame (the paper's
    168.05 noise points per frame, minus the ghosts, Section 3.2.4)."""
    rng = np.random.default_rng([site.seed, 0 if site.kind == "A" else 1, 2207])
    pos, region, mats = [], [], []
    o = site.sensor.origin

    def add_region(points, mat):
        if len(points) == 0:
            return
        region.append(np.full(len(points), len(mats)))
        pos.append(np.asarray(points, float))
        mats.append(mat)
    for b, mat in zip(site.boxes, site.box_material):
        if mat == OVERPASS:
            continue
        h = b[5]
        pts = []
        faces = [("x", b[0])] + ([("y", b[2])] if o[1] < b[2] else []) + ([("y", b[3])] if o[1] > b[3] else [])
        for axis, val in faces:
            span = (b[2], b[3]) if axis == "x" else (b[0], b[1])
            n = int(np.clip(np.sqrt((span[1] - span[0]) * h) / 4, 2, 30))
            u = rng.uniform(*span, n)
            z = rng.uniform(0.5, h, n)
            pts += [(val, uu, zz) if axis == "x" else (uu, val, zz) for uu, zz in zip(u, z)]
        n = int(np.clip((b[1] - b[0]) * (b[3] - b[2]) / 600, 1, 12))   # roof edges and fittings
        pts += list(zip(rng.uniform(b[0], b[1], n), rng.uniform(b[2], b[3], n), np.full(n, h + 1.0)))
        add_region(pts, int(mat))
    for t in site.trees:
        n = int(np.clip(t[2] / 3, 3, 15))
        a, rr = rng.uniform(0, 2 * np.pi, n), t[2] * np.sqrt(rng.random(n))
        add_region(list(zip(t[0] + rr * np.cos(a), t[1] + rr * np.sin(a), rng.uniform(2, t[3], n))), TREE)
    # river reaches of about 100 m
    cl = site.river
    step = max(1, int(len(cl) / (np.linalg.norm(cl[-1] - cl[0]) / 100)))
    for i in range(0, len(cl) - 1, step):
        seg = cl[i:i + step + 1]
        n = 8
        j = rng.integers(0, len(seg), n)
        off = rng.uniform(-site.river_half_width, site.river_half_width, n)
        add_region(list(zip(seg[j, 0] + off * 0.3, seg[j, 1] + off, np.full(n, 0.3))), RIVER)
    # open terrain patches of 100 m (sparse)
    for gx in np.arange(50, 1050, 100):
        for gy in np.arange(-950, 950, 100):
            n = 3
            xs, ys = rng.uniform(gx, gx + 100, n), rng.uniform(gy, gy + 100, n)
            free = (site.structure_height(xs, ys) < 1) & (site.river_distance(xs, ys) > site.river_half_width)
            add_region([(x, y, 0.5) for x, y, f in zip(xs, ys, free) if f], TERRAIN)
    # the overpass deck
    ov = site.roads[2]
    add_region([(p[0] + rng.uniform(-5, 5), p[1], 12.5) for p in ov[::2]], OVERPASS)

    pos = np.concatenate(pos)
    region = np.concatenate(region)
    mats = np.array(mats, dtype=np.int8)
    r, az, el = to_polar(pos, site.sensor)
    keep = in_fov(r, az, el, site.sensor)
    pos, region = pos[keep], region[keep]
    R = len(mats)
    # Fingerprints vary smoothly over the site (neighbouring structures of one
    # kind scatter alike, Section 3.2.1): a material mean, a smooth field over
    # a few hundred metres, and a small offset of the region's own.
    cx = np.bincount(region, weights=pos[:, 0], minlength=R) / np.maximum(np.bincount(region, minlength=R), 1)
    cy = np.bincount(region, weights=pos[:, 1], minlength=R) / np.maximum(np.bincount(region, minlength=R), 1)

    def smooth(amp):
        k = rng.uniform(-1 / 150, 1 / 150, (4, 2))
        ph = rng.uniform(0, 2 * np.pi, 4)
        return amp / 2 * np.sin(np.outer(cx, k[:, 0]) + np.outer(cy, k[:, 1]) + ph).sum(1)
    base = np.array([_MAT_RCS_DB[m] for m in mats])
    mean = np.stack([base + smooth(3.0) + rng.normal(0, 1.0, R), smooth(1.5) + rng.normal(0, 0.4, R),
                     smooth(2.0) + rng.normal(0, 0.6, R)], 1)
    chol = np.zeros((R, 3, 3))
    mat_sd = {m: np.array([rng.uniform(2.5, 3.5), rng.uniform(0.8, 1.2), rng.uniform(1.5, 2.5)])
              for m in _MAT_RCS_DB}
    mat_corr = {}
    for m in _MAT_RCS_DB:
        a = rng.normal(size=(3, 3))
        corr = np.clip(np.corrcoef(a @ a.T + 3 * np.eye(3)), -0.7, 0.7)  # a random correlation
        np.fill_diagonal(corr, 1.0)
        mat_corr[m] = corr
    for k in range(R):
        sd = mat_sd[mats[k]] * rng.uniform(0.9, 1.1, 3)
        cov = mat_corr[mats[k]] * np.outer(sd, sd)
        chol[k] = np.linalg.cholesky(cov + 0.05 * np.eye(3))
    mix = np.where(rng.random(R) < NON_GAUSSIAN_FRACTION, rng.uniform(0.2, 0.45, R), 0.0)
    shift = np.stack([rng.uniform(5, 9, R) * rng.choice([-1, 1], R), rng.uniform(1.5, 3, R),
                      -rng.uniform(3, 6, R)], 1)
    leak = np.array([_MAT_LEAK[m] for m in mats]) * rng.uniform(0.7, 1.3, R)
    drift = np.concatenate([np.zeros((R, 1, 3)),
                            np.cumsum(rng.normal(0, DRIFT_DB_PER_DAY, (R, MAX_DAYS, 3)), axis=1)], axis=1)
    # per-cell firing probability: mostly flickering, some persistent
    prob = rng.beta(0.6, 3.0, pos.shape[0])
    model = ClutterModel(pos=pos, region=region, prob=prob, reg_material=mats, reg_mean=mean,
                         reg_chol=chol, reg_mix=mix, reg_shift=shift, reg_leak=leak, reg_drift=drift)
    # detection probability of each cell (Monte Carlo over its fingerprint), then scale
    mc = np.random.default_rng([site.seed, 77])
    rr = np.linalg.norm(pos - site.sensor.origin, axis=1)
    pdet = np.zeros(pos.shape[0])
    for _ in range(16):
        lat = model._latent(region, mc, 0.0)
        pdet += (snr_db(rr, 10.0 ** (lat[:, 0] / 10.0), site.sensor) - lat[:, 1]) >= site.sensor.threshold_db
    pdet /= 16
    expected = float((prob * pdet).sum())
    model.prob = np.clip(prob * target_points / max(expected, 1e-9), 0.0, 0.97)
    return model
