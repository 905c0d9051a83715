"""System geometry of the cooperative ISAC network (Sec. II, Sec. V-A).

N_b base stations at the vertices of a regular polygon (a square for N_b = 4),
each with a vertical N0 x N0 full-duplex UPA whose normal points at the
polygon's centre; antenna spacing (lambda0 / 2) * xi. The region of interest
(ROI) is a horizontal slab (2D) or box (3D) above the polygon's centre,
discretised into voxels of size d0.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.constants import c as SPEED_OF_LIGHT  # m/s

MODES = ("A", "B", "C")
UAV_COUNTS = ("fixed", "poisson")
NOISE_MODELS = ("per_element", "antenna_share")

# The scene and noise model used before the paper's was adopted (Poisson UAV
# count, no spacing, P_n N0^2 per CSI element); kept as an option, and what a
# config dict without these keys (an older checkpoint) was made with.
EARLIER_SCENE_MODEL = dict(uav_count="poisson", min_separation_voxels=0.0,
                           noise_model="antenna_share")


@dataclass(frozen=True)
class ImagingConfig:
    """Every parameter of one imaging system; defaults are the paper's off-grid
    2D setting of Sec. V-C (N_b = 4, 140 m BS distance, 5x5 UPAs, P_t = 40 dBm,
    2D ROI 120 m x 120 m at 40 m, 40 x 40 voxels of 3 m)."""

    n_bs: int = 4
    bs_distance_m: float = 140.0          # side of the BS polygon (Sec. V-B2, V-C)
    bs_height_m: float = 20.0             # h_bs (Sec. V-A)
    f0_hz: float = 2.6e9                  # centre carrier (Sec. V-A)
    n0: int = 5                           # N0 x N0 UPA (Sec. V-C)
    xi: float = 1.0                       # sparse-array spacing factor; Sec. V-C does not
                                          # state it, so the half-wavelength array (xi = 1)
    n_subcarriers: int = 1                # N_f; Sec. V-C gives "a 6250 x 1600 matrix per
                                          # frequency" without N_f, we take one subcarrier
    bandwidth_hz: float = 40e6            # B (only matters when N_f > 1; Sec. V-B4 uses 40 MHz)
    gain: float = 4.0                     # G_s (Sec. V-A)
    roi_size_m: tuple = (120.0, 120.0, 0.0)   # x, y, z extent; z = 0 means a 2D ROI
    roi_height_m: float = 40.0            # h_roi, height of the ROI centre
    voxel_m: float = 3.0                  # d0
    mode: str = "A"                       # sensing mode (Sec. V-B2, Table II)
    pt_dbm: float = 40.0                  # P_t per BS (Sec. V-C)
    pn_dbm: float = -110.0                # noise per receive antenna (Sec. V-A)
    mean_uavs: float = 6.0                # UAV count (6 in 2D, 12 in 3D; Sec. V-B1, V-C)
    uav_count: str = "fixed"              # "fixed": exactly mean_uavs UAVs per scene (the
                                          # paper's); "poisson": Poisson(mean_uavs) (earlier)
    min_separation_voxels: float = 3.0    # UAVs' voxel indices at least this far apart
                                          # (the authors' generator; 0 = no constraint)
    noise_model: str = "per_element"      # "per_element": zeta_s^2 = P_n / P_t (the paper's);
                                          # "antenna_share": P_n N0^2 / P_t (earlier, 14 dB noisier)
    rcs_mean_m2: float = 0.01             # Gaussian RCS mean (Sec. V-A)
    rcs_std_m2: float = 0.001             # see targets.sample_rcs for why 0.001 is a std here
    roi_centre_xy_m: tuple = (0.0, 0.0)   # horizontal ROI centre: above the BS polygon's centre
                                          # (Fig. 1); a site's ROI may sit elsewhere (a street
                                          # off the scene's origin, Sec. V-C5)
    subcarrier_offsets_hz: tuple = ()     # offsets of the N_f subcarriers from f0; empty: spread
                                          # evenly over B. A ray-traced dataset's OFDM grid
                                          # (e.g. offsets k - N_f // 2) is given here

    def __post_init__(self):
        _check(self.n_bs >= 2, "n_bs", self.n_bs, "at least 2 base stations")
        _check(self.n0 >= 1, "n0", self.n0, "at least 1 antenna per dimension")
        _check(self.xi > 0, "xi", self.xi, "a positive spacing factor")
        _check(self.n_subcarriers >= 1, "n_subcarriers", self.n_subcarriers, ">= 1")
        _check(self.voxel_m > 0, "voxel_m", self.voxel_m, "a positive voxel size")
        _check(self.mode in MODES, "mode", self.mode, f"one of {MODES}")
        _check(len(self.roi_size_m) == 3 and min(self.roi_size_m) >= 0, "roi_size_m",
               self.roi_size_m, "three non-negative extents (x, y, z)")
        for axis, extent in zip("xy", self.roi_size_m[:2]):
            _check(extent >= self.voxel_m, f"roi_size_m[{axis}]", extent, ">= voxel_m")
        _check(self.mean_uavs >= 0, "mean_uavs", self.mean_uavs, ">= 0")
        _check(self.uav_count in UAV_COUNTS, "uav_count", self.uav_count, f"one of {UAV_COUNTS}")
        _check(self.uav_count != "fixed" or float(self.mean_uavs).is_integer(), "mean_uavs",
               self.mean_uavs, "a whole number when uav_count is 'fixed'")
        _check(self.min_separation_voxels >= 0, "min_separation_voxels",
               self.min_separation_voxels, ">= 0")
        _check(self.noise_model in NOISE_MODELS, "noise_model", self.noise_model,
               f"one of {NOISE_MODELS}")
        _check(len(self.roi_centre_xy_m) == 2, "roi_centre_xy_m", self.roi_centre_xy_m, "(x, y)")
        _check(len(self.subcarrier_offsets_hz) in (0, self.n_subcarriers), "subcarrier_offsets_hz",
               self.subcarrier_offsets_hz, f"none or one per subcarrier ({self.n_subcarriers})")

    def replace(self, **changes) -> "ImagingConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as a JSON-able dict; the site fields (``SITE_DEFAULTS``) only
        where they differ from their defaults, so configs, dataset cache keys and
        checkpoints written before those fields existed read the same."""
        d = dataclasses.asdict(self)
        for name, default in SITE_DEFAULTS.items():
            if tuple(d[name]) == default:
                del d[name]
            else:
                d[name] = list(d[name])
        d["roi_size_m"] = list(self.roi_size_m)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImagingConfig":
        """A config from ``to_dict``; a dict written before the scene and noise
        model were parameters (old checkpoints) gets the model it was made with."""
        d = {**EARLIER_SCENE_MODEL, **d}
        for name in ("roi_size_m", *SITE_DEFAULTS):
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)

    # --- derived quantities -------------------------------------------------
    @property
    def is_3d(self) -> bool:
        return self.roi_size_m[2] > 0

    @property
    def grid_shape(self) -> tuple:
        """(N_x, N_y) for a 2D ROI, (N_x, N_y, N_z) for a 3D one."""
        n = [int(round(s / self.voxel_m)) for s in self.roi_size_m]
        return tuple(n) if self.is_3d else tuple(n[:2])

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.grid_shape))

    @property
    def wavelength0(self) -> float:
        return SPEED_OF_LIGHT / self.f0_hz

    @property
    def n_antennas(self) -> int:
        return self.n0 * self.n0

    @property
    def noise_var(self) -> float:
        """Variance zeta_s^2 of each CSI element y_{nt,nr,nf} (Eq. 12), relative to
        A of unit transmit power.

        Sec. V-A: "The additive noise power per receiving antenna is P_n = -110
        dBm [12], with total noise power scaling according to the number of
        antennas." Each receive antenna (one row of R in Eq. 8) carries noise
        P_n per symbol. The LS estimate (Eq. 9) over N_s = N0^2 symbols with
        X X^H = P_t I (P_t per symbol interval, Sec. II-A) divides that noise
        by P_t, so every element of H_hat has zeta_s^2 = P_n / P_t: P_n per CSI
        element in units of the transmit power ("per_element"). The authors'
        released script does the same (A scaled by sqrt(P_t), noise of power
        P_n per element of y). The earlier model, "antenna_share", gave each
        antenna pair only P_t / N0^2 and so ignored the N0^2-symbol integration
        gain of Eq. 9: zeta_s^2 = P_n N0^2 / P_t, 10 log10(25) = 14 dB noisier
        for 5 x 5 UPAs."""
        per_element = dbm_to_watt(self.pn_dbm) / dbm_to_watt(self.pt_dbm)
        if self.noise_model == "antenna_share":
            return per_element * self.n_antennas
        return per_element


SITE_DEFAULTS = {"roi_centre_xy_m": (0.0, 0.0), "subcarrier_offsets_hz": ()}


def _check(ok: bool, name: str, value, need: str) -> None:
    if not ok:
        raise ValueError(f"bad imaging parameter {name}={value!r}: need {need}")


def dbm_to_watt(dbm: float) -> float:
    return 10.0 ** ((dbm - 30.0) / 10.0)


def config_2d(**changes) -> ImagingConfig:
    """The paper's 2D ROI (Sec. V-A): 120 m x 120 m at 40 m, 40 x 40 voxels."""
    return ImagingConfig(**changes)


def config_earlier(**changes) -> ImagingConfig:
    """The scene and noise model used before the paper's (``EARLIER_SCENE_MODEL``),
    for comparisons with figures measured under it."""
    return ImagingConfig(**{**EARLIER_SCENE_MODEL, **changes})


def config_3d(**changes) -> ImagingConfig:
    """The paper's 3D ROI (Sec. V-A): 100 x 100 x 80 m, 20 x 20 x 16 voxels of 5 m,
    centred at 80 m (Sec. V-B3), 12 UAVs (Sec. V-C: "The average UAV count is 6
    for 2D and 12 for 3D ROIs")."""
    base = dict(roi_size_m=(100.0, 100.0, 80.0), voxel_m=5.0, roi_height_m=80.0, mean_uavs=12.0)
    base.update(changes)
    return ImagingConfig(**base)


def bs_positions(cfg: ImagingConfig) -> np.ndarray:
    """(N_b, 3) BS centres on a regular polygon of side ``bs_distance_m`` (Fig. 1)."""
    radius = cfg.bs_distance_m / (2.0 * np.sin(np.pi / cfg.n_bs))
    # start at 45 deg so that four BSs sit on the corners of an axis-aligned square
    phi = np.pi / 4 + 2 * np.pi * np.arange(cfg.n_bs) / cfg.n_bs
    return np.stack([radius * np.cos(phi), radius * np.sin(phi),
                     np.full(cfg.n_bs, cfg.bs_height_m)], axis=1)


def antenna_positions(cfg: ImagingConfig) -> np.ndarray:
    """(N_b, N0^2, 3) antenna positions: vertical UPAs facing the polygon centre,
    spacing (lambda0 / 2) * xi (Sec. II)."""
    centres = bs_positions(cfg)
    spacing = cfg.wavelength0 / 2.0 * cfg.xi
    offs = (np.arange(cfg.n0) - (cfg.n0 - 1) / 2.0) * spacing
    out = np.empty((cfg.n_bs, cfg.n_antennas, 3))
    z_axis = np.array([0.0, 0.0, 1.0])
    for b, c in enumerate(centres):
        normal = -np.array([c[0], c[1], 0.0]) / np.hypot(c[0], c[1])
        horizontal = np.cross(z_axis, normal)
        grid_h, grid_v = np.meshgrid(offs, offs, indexing="ij")
        out[b] = c + grid_h.reshape(-1, 1) * horizontal + grid_v.reshape(-1, 1) * z_axis
    return out


def voxel_axes(cfg: ImagingConfig) -> list:
    """Voxel-centre coordinates along x, y (and z for a 3D ROI)."""
    axes = []
    centre = roi_centre(cfg)
    for k, n in enumerate(cfg.grid_shape):
        axes.append(centre[k] + (np.arange(n) - (n - 1) / 2.0) * cfg.voxel_m)
    return axes


def voxel_centres(cfg: ImagingConfig) -> np.ndarray:
    """(N_v, 3) voxel centres in C order of ``grid_shape`` (sigma's order, Sec. III-A)."""
    axes = voxel_axes(cfg)
    if not cfg.is_3d:
        axes = axes + [np.array([cfg.roi_height_m])]
    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)


def roi_centre(cfg: ImagingConfig) -> np.ndarray:
    """(3,) ROI centre: ``roi_centre_xy_m`` at the height ``roi_height_m``."""
    return np.array([*cfg.roi_centre_xy_m, cfg.roi_height_m], float)


def roi_bounds(cfg: ImagingConfig) -> np.ndarray:
    """(3, 2) lower/upper ROI bounds; a 2D ROI has zero height."""
    half = np.asarray(cfg.grid_shape + ((0,) if not cfg.is_3d else ()), float) * cfg.voxel_m / 2
    centre = roi_centre(cfg)
    return np.stack([centre - half, centre + half], axis=1)


def position_to_voxel(cfg: ImagingConfig, points: np.ndarray) -> np.ndarray:
    """Flat index of the voxel that contains each point (nearest centre)."""
    lo = roi_bounds(cfg)[:, 0]
    shape = cfg.grid_shape
    idx = np.floor((np.asarray(points)[:, :len(shape)] - lo[:len(shape)]) / cfg.voxel_m).astype(int)
    idx = np.clip(idx, 0, np.array(shape) - 1)
    return np.ravel_multi_index(tuple(idx.T), shape)


def subcarrier_wavelengths(cfg: ImagingConfig) -> np.ndarray:
    """lambda_{n_f} of N_f subcarriers spread evenly over B around f0, or at the
    config's explicit ``subcarrier_offsets_hz``."""
    if cfg.subcarrier_offsets_hz:
        return SPEED_OF_LIGHT / (cfg.f0_hz + np.asarray(cfg.subcarrier_offsets_hz, float))
    n = cfg.n_subcarriers
    spacing = cfg.bandwidth_hz / n
    freqs = cfg.f0_hz + (np.arange(n) - (n - 1) / 2.0) * spacing
    return SPEED_OF_LIGHT / freqs


def measurement_pairs(cfg: ImagingConfig) -> list:
    """(tx BS, rx BS) pairs measured in each sensing mode (Sec. V-B2, Table II):
    A = monostatic and multi-static, N_b (N_b + 1) / 2 sets (Eq. 14);
    B = multi-static only (a BS hears the others); C = monostatic only.
    Reciprocal pairs (b2, b1) carry the same channel, so only b1 <= b2 is kept."""
    pairs = [(b1, b2) for b1 in range(cfg.n_bs) for b2 in range(b1, cfg.n_bs)]
    if cfg.mode == "B":
        pairs = [p for p in pairs if p[0] != p[1]]
    elif cfg.mode == "C":
        pairs = [p for p in pairs if p[0] == p[1]]
    return pairs


def n_measurements(cfg: ImagingConfig) -> int:
    """Rows of A: N_f N0^4 times the number of BS pairs (Eq. 14)."""
    return cfg.n_subcarriers * cfg.n_antennas ** 2 * len(measurement_pairs(cfg))
