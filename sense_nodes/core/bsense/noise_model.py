"""Noise fingerprints per cube and similarity-based point filtering (BSense
paper, Section 3.2).

* Fit (Section 3.2.2, Eq. 3-9): the points of UAV-free frames are grouped by
  40 m cube; per cube the five signal metrics (SNR, SCR, noise, signal power,
  rx power) are z-score standardised (Eq. 5-6) and a multivariate Gaussian
  is fitted by maximum likelihood (Eq. 7-8). The Henze-Zirkler test
  (Section 3.2.1) marks cubes whose metrics are not jointly Gaussian; those
  cubes are not modelled by a Gaussian and their points are left to the
  later stages, as the paper does (the default). Our extension
  (:mod:`.fallback`, ``mixture_components=MIXTURE_COMPONENTS``) gives them
  a small Gaussian mixture instead: it removes more noise, but in the
  evaluation the whole system's F1 fell with it, so it is not the default.
* Filter (Section 3.2.3, Eq. 10-11): each point is standardised with its
  cube's statistics, its Mahalanobis distance to the cube's Gaussian is
  computed, and it is removed when the distance is below the cube's
  threshold, the p-th percentile (p = 80) of the distances of the cube's own
  fitting points. Fully vectorised over points.
* Update (Section 3.2.4): :class:`FingerprintUpdater` keeps the last N_u
  frames (700) with points near confirmed tracks excluded and refits every
  T_u (2 days) or on demand.
* Files: :meth:`NoiseModel.save` writes atomically a versioned ``.npz``;
  :meth:`NoiseModel.load` refuses a file it cannot read with
  :class:`NoiseModelFileError` naming the file.
"""
from __future__ import annotations

import collections
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cubes import DEFAULT_EDGE_M, CubeGrid, lookup, xyz_of
from .fallback import Fallback, fit_fallback
from .normality import henze_zirkler

METRICS = ("snr", "scr", "noise", "signal_power", "rx_power")   # Eq. 4
FORMAT = "bsense-noise-model"
VERSION = 1
# The fallback fingerprints' settings where they are switched on (our choices)
MIXTURE_COMPONENTS = 3      # parts of a non-Gaussian cube's mixture at most
FALLBACK_POOL_RADIUS = 1    # a sparse cube pools the 3 x 3 x 3 cubes around it
# Cube edges beyond this are not a fingerprint grid (the site is a few km).
MAX_CUBE_M = 10_000.0


class NoiseModelFileError(ValueError):
    """A noise-model file that cannot be read (missing, corrupt, other format or version)."""


def metrics_of(points: np.ndarray) -> np.ndarray:
    """(N, 5) float64 feature vectors f_i of Eq. 4 from a structured point array."""
    return np.stack([points[m] for m in METRICS], 1).astype(np.float64)


@dataclass(frozen=True)
class NoiseModelConfig:
    """Parameters of Section 3.2 (paper values unless marked)."""
    cube_m: float = DEFAULT_EDGE_M   # Section 3.2.2: 40 m
    percentile: float = 80.0         # Eq. 11: p = 80
    hz_alpha: float = 0.05           # Henze-Zirkler level (our choice: the usual 5%)
    min_points: int = 30             # fewest noise points to model a cube (our choice)
    hz_max_points: int = 300         # HZ on a random subsample of this size (our choice: O(n^2) test)
    seed: int = 0                    # subsample seed
    # fallback fingerprints (:mod:`.fallback`, our extension; 0 = the paper's
    # plain Gaussians only): pooled Gaussians for sparse cubes from this many
    # cubes each way (off: pooled air cubes remove UAV points), and mixtures
    # of up to this many parts for cubes that fail Henze-Zirkler (on: they
    # hold a large share of the clutter the paper leaves unmodelled)
    pool_radius: int = 0
    pool_min_points: int = 20        # own points a sparse cube needs to be pooled (our choice: fewer pooled air cubes)
    mixture_components: int = 0          # 0: the paper's model; MIXTURE_COMPONENTS: the fallback


class NoiseModel:
    """Per-cube noise fingerprints theta_c = (mu_c, sigma_c, m_c, Sigma_c, tau_c)
    (Eq. 9) and the Mahalanobis filter of Eq. 10-11.

    ``NoiseModel(config).fit(frames)`` fits from UAV-free frames (structured
    point arrays of BS_POINT_DTYPE); ``filter(points)`` returns a boolean
    keep mask (False = removed as noise)."""

    def __init__(self, config: NoiseModelConfig | None = None):
        self.config = config or NoiseModelConfig()
        self.grid = CubeGrid(self.config.cube_m)
        z5, z55 = np.zeros((0, 5)), np.zeros((0, 5, 5))
        self.keys = np.zeros(0, np.int64)       # sorted cube keys of the modelled cubes
        self.mu, self.sd, self.mean = z5, z5, z5  # Eq. 5, 6, 7
        self.prec = z55                           # Sigma_c^-1 (Eq. 8)
        self.tau = np.zeros(0)                    # Eq. 11
        self.count = np.zeros(0, np.int64)
        self.hz_p = np.zeros(0)                   # HZ p-value per cube
        self.gaussian = np.zeros(0, bool)         # cube passed HZ (only those filter)
        self.n_frames = 0
        self.provenance: dict = {}                # where the fit came from (saved with it)
        self.fallback = Fallback.empty()          # sparse and non-Gaussian cubes (:mod:`.fallback`)

    # ------------------------------------------------------------ fitting
    @property
    def fitted(self) -> bool:
        return self.keys.size > 0

    def fit(self, frames, exclude=None, exclude_radius_m: float = 15.0) -> "NoiseModel":
        """Fit from an iterable of frames (structured point arrays), Eq. 3-9 and 11.

        ``exclude``: optional per-frame (K, 3) positions (confirmed tracks,
        Section 3.2.4); points within ``exclude_radius_m`` of one are left out
        (radius our choice)."""
        xyz, feats, n = [], [], 0
        excl = iter(exclude) if exclude is not None else None
        for pts in frames:
            p = xyz_of(pts)
            f = metrics_of(pts)
            ex = next(excl) if excl is not None else None
            if ex is not None and len(ex):
                e = np.asarray(ex, dtype=np.float64).reshape(-1, 3)
                d2 = ((p[:, None, :] - e[None, :, :]) ** 2).sum(-1)
                ok = (d2 > exclude_radius_m ** 2).all(1)
                p, f = p[ok], f[ok]
            xyz.append(p)
            feats.append(f)
            n += 1
        if not xyz:
            raise ValueError("no frames to fit the noise model")
        self._fit_arrays(np.concatenate(xyz), np.concatenate(feats))
        self.n_frames = n
        return self

    def _fit_arrays(self, xyz: np.ndarray, F: np.ndarray) -> None:
        cfg = self.config
        ok = np.isfinite(F).all(1) & np.isfinite(xyz).all(1)
        xyz, F = xyz[ok], F[ok]
        keys = self.grid.keys(xyz)
        order = np.argsort(keys, kind="stable")
        keys, F = keys[order], F[order]
        all_keys, all_F = keys, F
        ukeys, start, cnt = np.unique(keys, return_index=True, return_counts=True)
        big = cnt >= cfg.min_points
        # Eq. 5-6: per-cube mean and standard deviation (vectorised by reduceat)
        s1 = np.add.reduceat(F, start, axis=0)
        mu = s1 / cnt[:, None]
        grp = np.repeat(np.arange(ukeys.size), cnt)
        dev = F - mu[grp]
        sd = np.sqrt(np.add.reduceat(dev ** 2, start, axis=0) / cnt[:, None])
        sd = np.maximum(sd, 1e-6)
        Z = dev / sd[grp]                                        # standardised f~
        # Eq. 7-8: MLE mean and covariance of the standardised vectors
        m = np.add.reduceat(Z, start, axis=0) / cnt[:, None]
        Zc = Z - m[grp]
        S = np.add.reduceat(Zc[:, :, None] * Zc[:, None, :], start, axis=0) / cnt[:, None, None]
        S += 1e-6 * np.eye(5)
        prec = np.linalg.inv(S)
        # Eq. 10 on the fitting points, Eq. 11: tau_c = P_p(distances)
        d = np.sqrt(np.maximum(np.einsum("ni,nij,nj->n", Zc, prec[grp], Zc), 0.0))
        tau = _group_percentile(d, grp, start, cnt, cfg.percentile)
        # Henze-Zirkler per cube (loop over cubes, not points)
        rng = np.random.default_rng(cfg.seed)
        hz_p = np.zeros(ukeys.size)
        for c in np.flatnonzero(big):
            z = Z[start[c]:start[c] + cnt[c]]
            if z.shape[0] > cfg.hz_max_points:
                z = z[rng.choice(z.shape[0], cfg.hz_max_points, replace=False)]
            hz_p[c] = henze_zirkler(z)[1]
        self.keys, self.mu, self.sd, self.mean, self.prec = ukeys[big], mu[big], sd[big], m[big], prec[big]
        self.tau, self.count, self.hz_p = tau[big], cnt[big], hz_p[big]
        self.gaussian = self.hz_p >= cfg.hz_alpha
        if cfg.pool_radius > 0 or cfg.mixture_components > 0:
            self.fallback = fit_fallback(self.grid, all_keys, all_F, self.keys[self.gaussian],
                                         self.keys[~self.gaussian], cfg.min_points, cfg.percentile,
                                         cfg.pool_radius, cfg.mixture_components, cfg.pool_min_points,
                                         cfg.seed)
        else:
            self.fallback = Fallback.empty()

    # ------------------------------------------------------------ filtering
    def distances(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Mahalanobis distance d_i of Eq. 10, cube row) per point; NaN and -1
        where the point's cube is not modelled."""
        n = points.shape[0]
        d = np.full(n, np.nan)
        if n == 0 or not self.fitted:
            return d, np.full(n, -1, np.int64)
        row = lookup(self.keys, self.grid.keys(xyz_of(points)))
        hit = np.flatnonzero(row >= 0)
        if hit.size:
            r = row[hit]
            z = (metrics_of(points[hit]) - self.mu[r]) / self.sd[r] - self.mean[r]
            d[hit] = np.sqrt(np.maximum(np.einsum("ni,nij,nj->n", z, self.prec[r], z), 0.0))
        return d, row

    def filter(self, points: np.ndarray) -> np.ndarray:
        """Keep mask of Section 3.2.3: False for points of a Gaussian cube
        whose Mahalanobis distance is below the cube's threshold tau_c, and
        for points of a cube with a fallback fingerprint that look like it."""
        d, row = self.distances(points)
        keep = np.ones(points.shape[0], bool)
        hit = np.flatnonzero(row >= 0)
        gauss = np.zeros(points.shape[0], bool)
        if hit.size:
            r = row[hit]
            gauss[hit] = self.gaussian[r]
            keep[hit] = ~(self.gaussian[r] & (d[hit] < self.tau[r]))
        if len(self.fallback):
            rest = np.flatnonzero(~gauss)
            fb = self.fallback.lookup(self.grid.keys(xyz_of(points[rest])))
            on = fb >= 0
            if on.any():
                keep[rest[on]] = ~self.fallback.remove(metrics_of(points[rest[on]]), fb[on])
        return keep

    def summary(self) -> dict:
        """Cubes modelled, share passing Henze-Zirkler, frames used."""
        n = int(self.keys.size)
        return {"cubes": n, "gaussian_cubes": int(self.gaussian.sum()),
                "gaussian_pct": 100.0 * float(self.gaussian.mean()) if n else float("nan"),
                "fallback_cubes": len(self.fallback), "frames": int(self.n_frames)}

    # ------------------------------------------------------------ files
    def save(self, path) -> Path:
        """Atomic write of the versioned model file (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        cfg = asdict(self.config)
        np.savez(buf, format=np.array(FORMAT), version=np.array(VERSION),
                 config_keys=np.array(list(cfg.keys())), config_vals=np.array([float(v) for v in cfg.values()]),
                 keys=self.keys, mu=self.mu, sd=self.sd, mean=self.mean, prec=self.prec, tau=self.tau,
                 count=self.count, hz_p=self.hz_p, gaussian=self.gaussian, n_frames=np.array(self.n_frames),
                 provenance=np.array(json.dumps(self.provenance)),
                 **{f"fb_{k}": getattr(self.fallback, k) for k in Fallback.ARRAYS})
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getvalue())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path) -> "NoiseModel":
        """Read a file written by :meth:`save`; anything else raises
        :class:`NoiseModelFileError` naming the file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z.files or str(z["format"]) != FORMAT:
                    raise NoiseModelFileError(f"'{path}' is not a BSense noise-model file")
                ver = int(z["version"])
                if ver != VERSION:
                    raise NoiseModelFileError(f"'{path}' has noise-model format version {ver}; "
                                              f"this code reads version {VERSION}")
                kv = dict(zip([str(k) for k in z["config_keys"]], [float(v) for v in z["config_vals"]]))
                fields = NoiseModelConfig.__dataclass_fields__
                cfg = NoiseModelConfig(**{k: type(getattr(NoiseModelConfig(), k))(v)
                                          for k, v in kv.items() if k in fields})
                m = cls(cfg)
                m.keys, m.mu, m.sd, m.mean = z["keys"], z["mu"], z["sd"], z["mean"]
                m.prec, m.tau, m.count, m.hz_p = z["prec"], z["tau"], z["count"], z["hz_p"]
                m.gaussian, m.n_frames = z["gaussian"].astype(bool), int(z["n_frames"])
                if "provenance" in z.files:
                    m.provenance = json.loads(str(z["provenance"]))
                if "fb_keys" in z.files:   # files without a fallback load as the paper's model
                    m.fallback = Fallback(*(z[f"fb_{k}"] for k in Fallback.ARRAYS))
        except NoiseModelFileError:
            raise
        except Exception as exc:   # missing, truncated, not a zip, missing arrays ...
            raise NoiseModelFileError(f"cannot read noise-model file '{path}': {exc}") from exc
        n = m.keys.size
        shapes_ok = (m.mu.shape == (n, 5) and m.sd.shape == (n, 5) and m.prec.shape == (n, 5, 5)
                     and m.tau.shape == (n,) and m.gaussian.shape == (n,))
        if not shapes_ok or (n > 1 and np.any(np.diff(m.keys) <= 0)):
            raise NoiseModelFileError(f"noise-model file '{path}' is inconsistent (array shapes or key order)")
        fb = m.fallback
        k = fb.w.shape[1] if fb.w.ndim == 2 else -1
        if not (fb.mu.shape == (len(fb), 5) and fb.w.shape == (len(fb), k) and fb.mean.shape == (len(fb), k, 5)
                and fb.prec.shape == (len(fb), k, 5, 5) and fb.logdet.shape == (len(fb), k)
                and fb.tau.shape == (len(fb),) and (len(fb) < 2 or np.all(np.diff(fb.keys) > 0))):
            raise NoiseModelFileError(f"noise-model file '{path}' has inconsistent fallback fingerprints")
        if not all(np.isfinite(a).all() for a in (m.mu, m.sd, m.mean, m.prec, m.tau, fb.mu, fb.sd, fb.mean,
                                                      fb.prec, fb.logdet, fb.tau)):
            raise NoiseModelFileError(f"noise-model file '{path}' holds non-finite fingerprints")
        c = m.config
        if not (0 < c.cube_m <= MAX_CUBE_M and 0 < c.percentile < 100 and c.min_points >= 1):
            raise NoiseModelFileError(f"noise-model file '{path}' has an implausible config (cube "
                                      f"{c.cube_m} m, percentile {c.percentile}, min_points {c.min_points})")
        return m


def _group_percentile(d, grp, start, cnt, q):
    """Per-group q-th percentile (linear interpolation, as np.percentile) of
    ``d`` whose groups are contiguous runs; vectorised."""
    order = np.lexsort((d, grp))
    ds = d[order]
    pos = (cnt - 1) * (q / 100.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, cnt - 1)
    frac = pos - lo
    return ds[start + lo] * (1.0 - frac) + ds[start + hi] * frac


class FingerprintUpdater:
    """Automatic model update of Section 3.2.4: keeps the last ``n_frames``
    (N_u = 700, paper) frames with points near confirmed tracks excluded, and
    refits every ``interval_s`` (T_u = 2 days, paper) or when
    :meth:`refit_now` is called (the on-demand service)."""

    def __init__(self, model: NoiseModel, n_frames: int = 700, interval_s: float = 2 * 86400.0,
                 exclude_radius_m: float = 15.0):
        self.model = model
        self.n_frames = int(n_frames)
        self.interval_s = float(interval_s)
        self.exclude_radius_m = float(exclude_radius_m)   # our choice
        self.buffer: collections.deque = collections.deque(maxlen=self.n_frames)
        self.last_fit_s: float | None = None

    def observe(self, points: np.ndarray, stamp_s: float, confirmed_positions=None) -> bool:
        """Store a frame (points within the radius of a confirmed track
        dropped); refit when T_u has passed. Returns True if it refitted."""
        p = points
        if confirmed_positions is not None and len(confirmed_positions) and len(p):
            e = np.asarray(confirmed_positions, dtype=np.float64).reshape(-1, 3)
            xyz = xyz_of(p)
            d2 = ((xyz[:, None, :] - e[None, :, :]) ** 2).sum(-1)
            p = p[(d2 > self.exclude_radius_m ** 2).all(1)]
        self.buffer.append(np.array(p, copy=True))
        if self.last_fit_s is None:
            self.last_fit_s = float(stamp_s)
            return False
        if stamp_s - self.last_fit_s >= self.interval_s:
            self.refit_now(stamp_s)
            return True
        return False

    def refit_now(self, stamp_s: float | None = None) -> dict:
        """Refit the model from the buffered frames (Section 3.2.4); returns its summary."""
        if not self.buffer:
            raise ValueError("no frames buffered to refit the noise model")
        fresh = NoiseModel(self.model.config).fit(list(self.buffer))
        m = self.model
        for k in ("keys", "mu", "sd", "mean", "prec", "tau", "count", "hz_p", "gaussian", "n_frames", "fallback"):
            setattr(m, k, getattr(fresh, k))
        if stamp_s is not None:
            self.last_fit_s = float(stamp_s)
        return m.summary()
