"""The monostatic 5G-A base-station sensor (BSense paper, Sections 2 and 4.1).

The paper's base station: 4.9 GHz, 100 MHz bandwidth, 128 channels, antenna
(AAU) 23 m above ground, range up to 1,000 m, one point-cloud frame every
0.64 s. Everything else here follows from those numbers or is a stated choice:

* range resolution c / 2B = 1.5 m; range error sigma = dR / sqrt(2 SNR);
* 128 channels as 16 columns x 4 rows x 2 polarisations (our choice, the
  usual AAU layout): 16 half-wavelength columns give a 6.3 deg azimuth beam;
  the 4 rows are 3-element subarrays 2.1 wavelengths apart, a 6 deg elevation
  beam with grating lobes every 28.4 deg. The angle error sigma =
  BW / (2 sqrt(2 SNR)), so the position error grows with range; and the
  elevation estimate sometimes locks onto a grating lobe (more often for weak
  echoes and for extended clutter), which lifts ground returns mid-air;
* Doppler resolution lambda / 2T for a dwell T = 64 ms (our choice, a tenth of
  the frame) is 0.48 m/s; a clutter notch removes returns slower than 0.4 m/s,
  which is why a UAV flying tangentially vanishes;
* SNR from the radar equation with the constants below, chosen so that a
  0.01 m^2 UAV (DJI Mavic 3 class) sits near the detection threshold at
  1,000 m: Swerling-1 fluctuation then makes far UAVs drop out.

The horizontal and vertical fields of view did not survive in our copy of the
paper: 120 deg x 60 deg (-15 deg to +45 deg elevation) is our choice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.constants import c as C_LIGHT  # m/s

from sense_nodes.bs_sensor import ANTENNA_HEIGHT_M, EL_MAX_DEG, EL_MIN_DEG, FRAME_S, HFOV_DEG, MAX_RANGE_M, MIN_RANGE_M



@dataclass(frozen=True)
class SensorConfig:
    """Sensor constants (Section 4.1 where the paper gives them)."""
    height_m: float = ANTENNA_HEIGHT_M  # paper
    freq_hz: float = 4.9e9           # paper
    bandwidth_hz: float = 100e6      # paper
    n_az: int = 16                   # 16 x 4 x 2 polarisations = 128 channels (our choice)
    n_el: int = 4
    el_spacing_wl: float = 2.1       # vertical channels are 3-element subarrays 0.7 lambda apart
    max_range_m: float = MAX_RANGE_M  # paper
    min_range_m: float = MIN_RANGE_M  # blind zone: our choice
    frame_s: float = FRAME_S         # paper
    hfov_deg: float = HFOV_DEG       # our choice (lost from the paper text)
    el_min_deg: float = EL_MIN_DEG   # our choice
    el_max_deg: float = EL_MAX_DEG   # our choice
    dwell_s: float = 0.064           # our choice
    notch_mps: float = 0.4           # clutter (MTI) notch: our choice
    # Radar equation, dB. Pt 49 dBm, 26 dBi per side, 5 dB noise figure,
    # 39 dB coherent processing gain, 12 dB losses (all our choices).
    pt_dbm: float = 49.0
    gain_dbi: float = 26.0
    nf_db: float = 5.0
    proc_gain_db: float = 39.0
    loss_db: float = 12.0
    threshold_db: float = 12.0       # CFAR detection threshold on SNR: our choice

    @property
    def wavelength_m(self) -> float:
        return C_LIGHT / self.freq_hz

    @property
    def range_res_m(self) -> float:
        return C_LIGHT / (2.0 * self.bandwidth_hz)

    @property
    def beamwidth_az_rad(self) -> float:
        return 0.886 * 2.0 / self.n_az

    @property
    def beamwidth_el_rad(self) -> float:
        return 0.886 / (self.n_el * self.el_spacing_wl)

    @property
    def grating_el_rad(self) -> float:
        """Elevation spacing of the grating lobes of the subarrayed column."""
        return float(np.arcsin(1.0 / self.el_spacing_wl))

    @property
    def doppler_res_mps(self) -> float:
        return self.wavelength_m / (2.0 * self.dwell_s)

    @property
    def noise_dbm(self) -> float:
        """Thermal noise power in the 100 MHz band (kTB + NF)."""
        return -174.0 + 10.0 * np.log10(self.bandwidth_hz) + self.nf_db

    @property
    def origin(self) -> np.ndarray:
        return np.array([0.0, 0.0, self.height_m])


DEFAULT_SENSOR = SensorConfig()


def to_polar(pos: np.ndarray, sensor: SensorConfig = DEFAULT_SENSOR):
    """(range, azimuth, elevation) of positions (N, 3) seen from the antenna."""
    d = np.asarray(pos, dtype=float) - sensor.origin
    rng = np.sqrt(np.einsum("ij,ij->i", d, d))
    az = np.arctan2(d[:, 1], d[:, 0])
    el = np.arcsin(np.clip(d[:, 2] / np.maximum(rng, 1e-9), -1.0, 1.0))
    return rng, az, el


def from_polar(rng, az, el, sensor: SensorConfig = DEFAULT_SENSOR) -> np.ndarray:
    ce = np.cos(el)
    out = np.empty((np.shape(rng)[0], 3))
    out[:, 0] = rng * ce * np.cos(az)
    out[:, 1] = rng * ce * np.sin(az)
    out[:, 2] = rng * np.sin(el) + sensor.height_m
    return out


def radial_velocity(pos: np.ndarray, vel: np.ndarray, sensor: SensorConfig = DEFAULT_SENSOR):
    """Range rate (m/s, positive moving away) of objects at ``pos`` with ``vel``."""
    d = np.asarray(pos, dtype=float) - sensor.origin
    rng = np.maximum(np.sqrt(np.einsum("ij,ij->i", d, d)), 1e-9)
    return np.einsum("ij,ij->i", d, vel) / rng


def in_fov(rng, az, el, sensor: SensorConfig = DEFAULT_SENSOR):
    half = np.radians(sensor.hfov_deg) / 2.0
    return ((rng >= sensor.min_range_m) & (rng <= sensor.max_range_m) & (np.abs(az) <= half)
            & (el >= np.radians(sensor.el_min_deg)) & (el <= np.radians(sensor.el_max_deg)))


def snr_db(rng, rcs_m2, sensor: SensorConfig = DEFAULT_SENSOR):
    """Mean SNR (dB) from the monostatic radar equation (Section 4.1 constants)."""
    lam = sensor.wavelength_m
    rng = np.maximum(np.asarray(rng, dtype=float), 1.0)
    rcs = np.maximum(np.asarray(rcs_m2, dtype=float), 1e-12)
    return (sensor.pt_dbm + 2 * sensor.gain_dbi + 20 * np.log10(lam) + 10 * np.log10(rcs)
            - 30 * np.log10(4 * np.pi) - 40 * np.log10(rng) - sensor.noise_dbm
            + sensor.proc_gain_db - sensor.loss_db)


def swerling1(mean_snr_db, rng: np.random.Generator):
    """One Swerling-1 (exponential power) draw of the SNR around its mean, dB."""
    mean = np.asarray(mean_snr_db, dtype=float)
    return mean + 10.0 * np.log10(np.maximum(rng.exponential(size=mean.shape), 1e-6))


def grating_probability(snr, extended: bool = False):
    """Chance that the elevation estimate picks a grating lobe: for a point
    target 0.12 at the detection threshold, falling 20 dB per decade of
    amplitude; for extended clutter (many scatterers spread over the
    elevation beam, so the subarray pattern no longer tells the lobes apart)
    0.55 whatever the SNR (our choices)."""
    p = 0.12 * 10.0 ** (-(np.asarray(snr, dtype=float) - DEFAULT_SENSOR.threshold_db) / 20.0)
    return np.where(extended, 0.55, np.clip(p, 0.0, 0.5))


def measure(pos, vr, snr, rng: np.random.Generator, sensor: SensorConfig = DEFAULT_SENSOR,
            extended: bool = False):
    """Noisy measured position and Doppler of returns with true ``pos``,
    range rate ``vr`` and SNR ``snr`` (dB): the errors follow from resolution
    over sqrt(2 SNR), plus small calibration floors (our choice), and an
    elevation grating-lobe error now and then (:func:`grating_probability`)."""
    r, az, el = to_polar(pos, sensor)
    k = 1.0 / np.sqrt(2.0 * 10.0 ** (np.asarray(snr, dtype=float) / 10.0))
    n = r.shape[0]
    z = rng.standard_normal((n, 4))
    r = r + z[:, 0] * np.hypot(sensor.range_res_m * k, 0.3)
    az = az + z[:, 1] * np.hypot(sensor.beamwidth_az_rad * k / 2.0, np.radians(0.15))
    el = el + z[:, 2] * np.hypot(sensor.beamwidth_el_rad * k / 2.0, np.radians(0.3))
    # grating lobes: up if that stays in view, else down
    g = sensor.grating_el_rad
    jump = rng.random(n) < grating_probability(snr, extended)
    up = el + g <= np.radians(sensor.el_max_deg)
    down = el - g >= np.radians(sensor.el_min_deg)
    el = np.where(jump & up, el + g, np.where(jump & ~up & down, el - g, el))
    dop = np.asarray(vr, dtype=float) + z[:, 3] * np.hypot(sensor.doppler_res_mps * k, 0.05)
    return from_polar(r, az, el, sensor), dop
