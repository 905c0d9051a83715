"""BS-CPE uplink channels with and without a UAV (kind ``fwa``),
after ``fwa_cooperative_sensing.txt`` Section V-A (V-A1 scenario, V-A2 labels,
V-A3 the random phase augmentation of Eq. 27).

Scene and geometry. The paper's 200 m x 200 m campus is not shipped with
Sionna RT; we use the ``munich`` city scene around its origin. ``M = 2`` BSs
at 100 m height and ``N = 16`` CPEs at 18 m (Section V-A1); the paper gives
their x-y layout only in a figure, so we place the BSs at (-50, 0) and
(50, 0) and the CPEs on a jittered 4 x 4 grid over [-75, 75]^2, each moved to
the nearest spot where the ground or roof is below 16 m. Each BS has a
64-element 8 x 8 UPA and each CPE a 4-element 2 x 2 UPA (half-wavelength,
isotropic, vertical polarisation: the paper states only the counts), all
mounted vertically and facing the area centre horizontally. (Tilting the BS
arrays down at the area centre rotates their polarisation: the UAV echo then
departs from the scalar cascaded model by 0.40 rad / 4.1 dB on average,
against 0.011 rad / 0.011 dB with vertical arrays, measured by
:func:`analytic_check`.)
Carrier 2.8 GHz, 30 kHz spacing, ``N_c = 512`` subcarriers (20 MHz channel).
The UAV is at ``p = (x, y, 60)``, ``x, y ~ U[-75, 75]`` (Section V-A1).

Channels. The BSs and CPEs are static, so the background (LoS plus
first-order specular and diffuse reflections, Section V-A1) is traced once by
``PathSolver`` with the BSs as sources and the CPEs as receivers, reversed to
the uplink (CPE -> BS). The paper's metallic cube traced by ``PathSolver`` is
hit by too few rays to be usable, so the UAV echo is traced per sample by
``RCSSolver`` with a point target (constant RCS 0.052 m^2, the mean of the
small-UAV model 1 of 3GPP TR 38.901, -12.8 dBsm; the paper gives none).
Pair label ``y(m,n) = 1`` when the pair has a traced path through the UAV
(the paper's "pair's paths touch the UAV"); scene label ``y_s = 1`` when a UAV
is present. UAV-present and UAV-absent samples are matched in number.

Eq. 27 augmentation: ``H_ij(f) = sum_p alpha_ijp exp(-j 2 pi f tau_p)
exp(j theta_p)``, ``theta_p ~ U[0, 2 pi)``, drawn per sample, pair and path
(background and echo paths alike) from ``numpy.random.default_rng([seed,
sample, 27])``: the dataset stores the *paths* and the loader
(:func:`sample_links`) builds the CFRs, so a dataset of any size stays small.

Layout of ``arrays.h5`` (S samples, P = 32 pairs ordered ``m * 16 + n``,
``Pb`` background and ``Pe`` echo paths per pair, zero-padded):

- ``bg_a`` [P, 64, 4, Pb] complex64, ``bg_tau`` [P, Pb] float32 (s; -1 pad):
  baseband path coefficients (uplink: ``[bs_ant, cpe_ant, path]``)
- ``echo_a`` [S, P, 64, 4, Pe] complex64, ``echo_tau`` [S, P, Pe] float32
- ``uav_present`` [S] int8 (scene label), ``uav_pos`` [S, 3] float32 (NaN if
  absent), ``pair_label`` [S, P] int8, ``echo_to_background_db`` [S, P]
- ``split_random`` [S] int8: 3:1:1 within each class (matched splits)
- ``link_snr_db`` [P] float32: background SNR (23 dBm CPE, -96 dBm noise)
- ``bs_pos`` [2, 3], ``cpe_pos`` [16, 3] float32
"""
from __future__ import annotations

import weakref

import numpy as np

from sense_nodes.data.csi import cfr as cfrmod
from sense_nodes.data.csi import dataset as dsmod
from sense_nodes.data.csi import rt

KIND = "fwa"
SCENE = "munich"
CARRIER_HZ = 2.8e9
SCS_HZ = 30e3
NUM_SUBCARRIERS = 512
NUM_BS, NUM_CPE = 2, 16
BS_XY = np.array([[-50.0, 0.0], [50.0, 0.0]])
BS_HEIGHT, CPE_HEIGHT, UAV_HEIGHT = 100.0, 18.0, 60.0
UAV_XY_RANGE = 75.0
UAV_RCS = 0.052
SCATTERING_COEFFICIENT = 0.3  # the paper assigns materials but no values
DEFAULT_SAMPLES = 2000  # 1000 UAV-present + 1000 UAV-absent (paper: 27,000)
TINY_SAMPLES = 6
BACKGROUND_SOLVER = dict(max_depth=1, los=True, specular_reflection=True,
                         diffuse_reflection=True, refraction=False, diffraction=False,
                         samples_per_src=20_000, max_num_paths_per_src=200_000, seed=11)
TINY_BACKGROUND_SOLVER = dict(BACKGROUND_SOLVER, samples_per_src=4_000)
# Diffuse paths weaker than this fraction of a pair's strongest path are
# dropped (keeps the stored paths and the CFR cost bounded).
PATH_FLOOR_REL = 1e-5
# Link budget for the per-pair SNR reported with each frame (the paper gives
# none): CPE transmit power 23 dBm (3GPP UE power class 3), noise -174 dBm/Hz
# over 20 MHz with a 5 dB BS noise figure.
CPE_TX_DBM = 23.0
NOISE_DBM = -174.0 + 10 * np.log10(20e6) + 5.0


def pairs():
    return [{"index": m * NUM_CPE + n, "tx_id": f"cpe{n}", "rx_id": f"bs{m}", "bs": m, "cpe": n}
            for m in range(NUM_BS) for n in range(NUM_CPE)]


def cpe_positions(scene) -> np.ndarray:
    """Fixed jittered 4 x 4 grid, moved off buildings taller than 16 m."""
    rng = np.random.default_rng(2024)
    g = np.linspace(-UAV_XY_RANGE, UAV_XY_RANGE, 4)
    xy = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    xy = xy + rng.uniform(-8, 8, size=xy.shape)
    out = []
    for p in xy:
        cand = p + np.concatenate([[[0, 0]], rng.uniform(-25, 25, size=(400, 2))])
        z = rt.surface_height(scene, cand)
        ok = np.flatnonzero(np.nan_to_num(z, nan=0.0) < CPE_HEIGHT - 2)
        best = ok[np.argmin(np.linalg.norm(cand[ok] - p, axis=1))]
        out.append([cand[best, 0], cand[best, 1], CPE_HEIGHT])
    return np.array(out)


def _build_scene(cuda=False, tiny=False):
    srt = rt.setup(cuda)
    scene = rt.load_scene(SCENE, frequency_hz=CARRIER_HZ,
                          scattering_coefficient=SCATTERING_COEFFICIENT, cuda=cuda)
    scene.tx_array = srt.PlanarArray(num_rows=8, num_cols=8, pattern="iso", polarization="V")
    scene.rx_array = srt.PlanarArray(num_rows=2, num_cols=2, pattern="iso", polarization="V")
    bs = np.c_[BS_XY, np.full(NUM_BS, BS_HEIGHT)]
    cpe = cpe_positions(scene)
    for m, p in enumerate(bs):
        # vertical arrays facing the area centre horizontally (mast mounting)
        scene.add(srt.Transmitter(name=f"bs{m}", position=rt.point(p), look_at=rt.point([0, 0, p[2]])))
    for n, p in enumerate(cpe):
        scene.add(srt.Receiver(name=f"cpe{n}", position=rt.point(p), look_at=rt.point([0, 0, p[2]])))
    return scene, bs, cpe


def _pair_paths(a, tau, floor_rel=0.0):
    """Uplink cir [bs, 64, cpe, 4, p] / [bs, cpe, p] -> per pair lists."""
    out_a, out_t = [], []
    for pr in pairs():
        aa = a[pr["bs"], :, pr["cpe"], :, :]
        tt = tau[pr["bs"], pr["cpe"], :]
        pw = np.mean(np.abs(aa) ** 2, axis=(0, 1))
        keep = (tt >= 0) & (pw > 0)
        if floor_rel > 0 and keep.any():
            keep &= pw >= floor_rel * pw[keep].max()
        aa, tt, pw = aa[:, :, keep], tt[keep], pw[keep]
        # Dr.Jit compacts traced paths with atomics, so their order varies
        # from run to run on several threads: sort by delay, then power, so
        # a seed gives the same arrays.
        order = np.lexsort((np.angle(aa[0, 0]), -pw, tt))
        out_a.append(aa[:, :, order])
        out_t.append(tt[order])
    return out_a, out_t


def _pad(alist, tlist, width=None):
    width = max([t.size for t in tlist] + [1]) if width is None else width
    a = np.zeros((len(alist),) + alist[0].shape[:2] + (width,), np.complex64)
    t = np.full((len(tlist), width), -1.0, np.float32)
    for i, (aa, tt) in enumerate(zip(alist, tlist)):
        a[i, :, :, :tt.size] = aa[:, :, :width]
        t[i, :tt.size] = tt[:width]
    return a, t


def generate(out_dir, seed: int = 0, tiny: bool = False, samples: int | None = None,
             cuda: bool = False, progress: bool = True):
    from tqdm import tqdm
    timer = dsmod.Timer()
    n = int(samples if samples is not None else (TINY_SAMPLES if tiny else DEFAULT_SAMPLES))
    if n < 2 or n % 2:
        raise ValueError("samples must be an even number >= 2 (matched UAV-present/absent)")
    scene, bs, cpe = _build_scene(cuda, tiny)
    from sionna.rt.rcs import ConstantRCSSensingTarget, RCSSolver
    bg_cfg = TINY_BACKGROUND_SOLVER if tiny else BACKGROUND_SOLVER
    paths = rt.solve_paths(scene, **bg_cfg)
    a, tau = cfrmod.cir_numpy(paths, reverse_direction=True)
    n_bg_raw, ds_bg = cfrmod.link_path_stats(a, tau)
    bg_a, bg_t = _pad(*_pair_paths(a, tau, PATH_FLOOR_REL))
    rng = np.random.default_rng(seed)
    present = np.zeros(n, np.int8)
    present[rng.permutation(n)[: n // 2]] = 1
    uav = np.full((n, 3), np.nan, np.float32)
    k = int(present.sum())
    uav[present == 1, :2] = rng.uniform(-UAV_XY_RANGE, UAV_XY_RANGE, size=(k, 2))
    uav[present == 1, 2] = UAV_HEIGHT
    target = ConstantRCSSensingTarget(name="uav", sigma=UAV_RCS, position=rt.point([0, 0, -500]))
    scene.add(target)
    solver = RCSSolver(deterministic=True)
    P = len(pairs())
    echo_list = []
    for i in tqdm(range(n), desc="fwa UAV echoes", disable=not progress, unit="sample"):
        if not present[i]:
            echo_list.append(None)
            continue
        target.position = rt.point(uav[i])
        ep = solver(scene, max_depth=1, samples_per_sp=10_000, buffer_size_per_sp=2_000,
                    seed=int(seed * 100_003 + i))
        ea, et = cfrmod.cir_numpy(ep, reverse_direction=True)
        echo_list.append(_pair_paths(ea, et))
    pe = max([t.size for e in echo_list if e for t in e[1]] + [1])
    echo_a = np.zeros((n, P, 64, 4, pe), np.complex64)
    echo_t = np.full((n, P, pe), -1.0, np.float32)
    for i, e in enumerate(echo_list):
        if e:
            echo_a[i], echo_t[i] = _pad(e[0], e[1], pe)
    pair_label = (echo_t >= 0).any(-1).astype(np.int8)
    p_bg = np.mean(np.abs(bg_a) ** 2, axis=(1, 2)).sum(-1)  # [P]
    p_echo = np.mean(np.abs(echo_a) ** 2, axis=(2, 3)).sum(-1)  # [S, P]
    with np.errstate(divide="ignore"):
        e2b = (10 * np.log10(np.maximum(p_echo, 1e-30) / np.maximum(p_bg, 1e-30))).astype(np.float32)
    e2b[pair_label == 0] = np.nan
    with np.errstate(divide="ignore"):
        link_snr = (CPE_TX_DBM - NOISE_DBM + 10 * np.log10(np.maximum(p_bg, 1e-30))).astype(np.float32)
    split = np.zeros(n, np.int8)
    for cls in (0, 1):
        idx = np.flatnonzero(present == cls)
        split[idx] = dsmod.random_split(idx.size, rng)
    secs = timer.seconds()
    prs = pairs()
    manifest = {
        "kind": KIND, "scene": SCENE, "paper": "fwa_cooperative_sensing.txt Section V-A, Eq. 27",
        "num_samples": n, "tiny": tiny, "seed": seed, "code_version": dsmod.code_version(),
        "versions": rt.versions(), "variant": rt.variant(),
        "carrier_hz": CARRIER_HZ, "subcarrier_spacing_hz": SCS_HZ, "num_subcarriers": NUM_SUBCARRIERS,
        "subcarriers": "centred baseband offsets (k - K//2) * spacing; ifftshift before an IFFT",
        "normalize_delays": cfrmod.NORMALIZE_DELAYS, "direction": "uplink (CPE -> BS)",
        "geometry": {"bs_pos_m": bs, "cpe_pos_m": cpe, "uav_height_m": UAV_HEIGHT,
                     "uav_xy_range_m": [-UAV_XY_RANGE, UAV_XY_RANGE]},
        "antenna_arrays": {"bs": {"rows": 8, "cols": 8, "pattern": "iso", "polarization": "V", "ports": 64},
                           "cpe": {"rows": 2, "cols": 2, "pattern": "iso", "polarization": "V", "ports": 4}},
        "uav": {"model": "ConstantRCSSensingTarget (point)", "rcs_m2": UAV_RCS},
        "solver": {"background": dict(bg_cfg, solver="PathSolver(deterministic=True)",
                                      scattering_coefficient=SCATTERING_COEFFICIENT,
                                      path_floor_rel=PATH_FLOOR_REL),
                   "echo": {"solver": "RCSSolver(deterministic=True)", "max_depth": 1,
                            "samples_per_sp": 10_000, "seed": f"{seed} * 100003 + sample"}},
        "augmentation": {"eq27_random_phase": True,
                         "rng": "numpy.random.default_rng([seed, sample, 27]).uniform(0, 2 pi, "
                                "[pairs, bg paths + echo paths])"},
        "links": [{"index": p["index"], "tx_id": p["tx_id"], "rx_id": p["rx_id"]} for p in prs],
        "split": {"schemes": {"random": {"array": "split_random", "ratios": [3, 1, 1],
                                         "stratified": "uav_present"}}},
        "link_budget": {"cpe_tx_dbm": CPE_TX_DBM, "noise_dbm": NOISE_DBM},
        "scaling": {"knob": "samples (sense data generate --samples N, even)", "default": DEFAULT_SAMPLES,
                    "cost": "one RCSSolver call per UAV-present sample; the background is traced once"},
        "background_paths_per_pair": [int(n_bg_raw[p["bs"], p["cpe"]]) for p in prs],
        "background_paths_kept_per_pair": [int((bg_t[p["index"]] >= 0).sum()) for p in prs],
        "background_delay_spread_s": [float(ds_bg[p["bs"], p["cpe"]]) for p in prs],
        "generation": {"seconds": secs, "samples_per_s": n / secs},
    }
    arrays = {"bg_a": bg_a, "bg_tau": bg_t, "echo_a": echo_a, "echo_tau": echo_t,
              "uav_present": present, "uav_pos": uav, "pair_label": pair_label,
              "echo_to_background_db": e2b, "split_random": split, "link_snr_db": link_snr,
              "bs_pos": bs.astype(np.float32), "cpe_pos": cpe.astype(np.float32)}
    return dsmod.write_dataset(out_dir, manifest, arrays)


def eq27_phases(ds, index: int) -> np.ndarray:
    """theta_p ~ U[0, 2 pi) per pair and path (background, then echo)."""
    nb = ds.arrays["bg_tau"].shape[-1]
    ne = ds.arrays["echo_tau"].shape[-1]
    g = np.random.default_rng([int(ds.manifest["seed"]), int(index), 27])
    return g.uniform(0.0, 2 * np.pi, size=(ds.arrays["bg_tau"].shape[0], nb + ne))


def noise_std(ds, snr_offset_db: float = 0.0) -> np.ndarray:
    """Per-pair standard deviation of the complex receiver noise per CFR
    entry: the background power per entry over the pair's link SNR
    (``link_snr_db``) raised by ``snr_offset_db`` (positive = cleaner)."""
    snr = 10 ** ((ds.arrays["link_snr_db"].astype(np.float64) + snr_offset_db) / 10)
    return np.sqrt(_background(ds).power / snr)


class _Background:
    """What does not change from sample to sample: per pair the background
    paths without their zero padding (coefficients ``[bs_ant, cpe_ant,
    paths]``, delays), the power per CFR entry, and per number of
    subcarriers the paths' delay phasors ``exp(-j 2 pi f_k tau_p)``."""

    def __init__(self, ds):
        bg_a, bg_t = ds.arrays["bg_a"], ds.arrays["bg_tau"]
        self.power = np.mean(np.abs(bg_a) ** 2, axis=(1, 2)).sum(-1)  # [P]
        self.valid = [t >= 0 for t in bg_t]
        self.a = [a[:, :, v] for a, v in zip(bg_a, self.valid)]
        self.tau = [t[v] for t, v in zip(bg_t, self.valid)]
        self.scs_hz, self._phasors = ds.scs_hz, {}

    def phasors(self, k: int) -> list:
        if k not in self._phasors:
            freqs = cfrmod.subcarrier_offsets(k, self.scs_hz)
            self._phasors[k] = [cfrmod.delay_phasors(t, freqs) for t in self.tau]
        return self._phasors[k]


_BACKGROUNDS = weakref.WeakKeyDictionary()  # dataset -> its _Background, freed with it


def _background(ds) -> _Background:
    return _BACKGROUNDS.get(ds) or _BACKGROUNDS.setdefault(ds, _Background(ds))


def _pair_paths_of_sample(ds, index: int, augment: bool = True) -> list:
    """Per pair (coefficients ``[bs_ant, cpe_ant, paths]`` with the Eq. 27
    phases when ``augment``, the echo paths' delays): the background's
    paths, then the sample's UAV echo paths, zero padding dropped."""
    bg = _background(ds)
    echo_a, echo_t = ds.arrays["echo_a"][index], ds.arrays["echo_tau"][index]
    nb = ds.arrays["bg_tau"].shape[-1]
    rot = np.exp(1j * eq27_phases(ds, index)).astype(np.complex64) if augment else None
    out = []
    for i, ve in enumerate(echo_t >= 0):
        a = np.concatenate([bg.a[i], echo_a[i][:, :, ve]], axis=-1)
        if augment:
            a *= np.concatenate([rot[i, :nb][bg.valid[i]], rot[i, nb:][ve]])
        out.append((a, echo_t[i, ve]))
    return out


def _noise(ds, index: int, shape: tuple, snr_offset_db: float) -> np.ndarray:
    """The receiver noise of sample ``index`` [P, *shape], drawn from
    ``default_rng([seed, sample, 28])`` pair after pair."""
    nrng = np.random.default_rng([int(ds.manifest["seed"]), int(index), 28])
    return cfrmod.receiver_noise(nrng, shape, noise_std(ds, snr_offset_db))


def sample_links(ds, index: int, augment: bool = True, num_subcarriers: int | None = None,
                 noise: bool = True, snr_offset_db: float = 0.0):
    """Per-pair uplink CFRs ``H[bs_ant 64, cpe_ant 4, k]`` of sample
    ``index`` with the Eq. 27 random path phases (``augment``) and complex
    Gaussian receiver noise at each pair's ``link_snr_db`` shifted by
    ``snr_offset_db`` (``noise``; drawn from ``default_rng([seed, sample,
    28])``, so a sample is the same on every read). The reported SNR is the
    shifted one."""
    k = int(num_subcarriers or ds.manifest["num_subcarriers"])
    if not np.isfinite(snr_offset_db):
        raise ValueError(f"snr_offset_db must be finite (got {snr_offset_db})")
    freqs = cfrmod.subcarrier_offsets(k, ds.scs_hz)
    phasors = _background(ds).phasors(k)
    paths = _pair_paths_of_sample(ds, index, augment)
    H = np.empty((len(paths),) + paths[0][0].shape[:2] + (k,), np.complex64)
    for i, (aa, echo_tau) in enumerate(paths):
        e = np.concatenate([phasors[i], cfrmod.delay_phasors(echo_tau, freqs)])
        np.matmul(aa.reshape(-1, aa.shape[-1]), e, out=H[i].reshape(-1, k))
    if noise:  # one draw and one sum for all pairs (few large numpy calls per sample)
        H += _noise(ds, index, H.shape[1:], snr_offset_db)
    snr = ds.arrays["link_snr_db"].astype(np.float64) + (snr_offset_db if noise else 0.0)
    out = [dsmod.LinkCsi(p["tx_id"], p["rx_id"], p["index"], H[p["index"]], ds.carrier_hz, ds.scs_hz,
                         float(snr[p["index"]])) for p in ds.links]
    truth = {"uav_present": bool(ds.arrays["uav_present"][index]), "uav_pos": ds.arrays["uav_pos"][index],
             "pair_label": ds.arrays["pair_label"][index]}
    truth["objects"] = ([dsmod.truth_object(0, 1, truth["uav_pos"], visible=bool(truth["pair_label"].any()))]
                        if truth["uav_present"] else [])
    return dsmod.CsiSample(index, out, truth)


def analytic_check(seed: int = 0, points: int = 4, cuda: bool = False) -> dict:
    """The UAV echo of this geometry (BS -> UAV -> CPE, ``RCSSolver``) against
    the free-space bistatic (cascaded) model of the imaging paper's Eq. 10/11,
    at ``points`` UAV positions, over all BS-CPE pairs with an echo, antenna
    pairs and 32 of the 512 subcarriers."""
    from sense_nodes.data.csi.imaging_channels import echo_vs_cascaded_model
    from sionna.rt.rcs import ConstantRCSSensingTarget
    scene, _bs, _cpe = _build_scene(cuda)
    target = ConstantRCSSensingTarget(name="uav", sigma=1.0, position=rt.point([0, 0, -500]))
    scene.add(target)
    rng = np.random.default_rng([seed, 7])
    pts = np.c_[rng.uniform(-UAV_XY_RANGE, UAV_XY_RANGE, size=(points, 2)), np.full(points, UAV_HEIGHT)]
    freqs = cfrmod.subcarrier_offsets(NUM_SUBCARRIERS, SCS_HZ)[::16]
    return echo_vs_cascaded_model(scene, target, [f"bs{m}" for m in range(NUM_BS)],
                                  [f"cpe{n}" for n in range(NUM_CPE)], pts, UAV_RCS,
                                  CARRIER_HZ, freqs, seed)


def periodic_blackman(n: int) -> np.ndarray:
    """Blackman window of period ``n`` over the centred subcarriers:
    0.42 + 0.5 cos(2 pi m / n) + 0.08 cos(4 pi m / n), m = k - n/2."""
    return np.blackman(n + 1)[:-1]


def sample_taps(ds, index: int, n_taps: int = 64, noise: bool = True, snr_offset_db: float = 0.0):
    """The first ``n_taps`` delay taps of each pair's CFR of
    :func:`sample_links` (same Eq. 27 phases, same noise draws), without
    forming the 512 subcarriers: ``taps[i] = ifft(ifftshift(H_i))[..., :n]``
    and ``taps_w[i]`` the same of ``H_i`` times :func:`periodic_blackman`,
    both [P, 64, 4, n_taps] complex64. The paths enter through the
    Dirichlet kernel of the subcarrier grid (exact), the noise through an
    FFT of the very samples :func:`sample_links` adds; equal to the
    transform of :func:`sample_links`' CFRs up to rounding."""
    k = int(ds.manifest["num_subcarriers"])
    if not np.isfinite(snr_offset_db):
        raise ValueError(f"snr_offset_db must be finite (got {snr_offset_db})")
    bg = _background(ds)
    n = np.arange(-2, n_taps + 2)  # two extra taps each side for the window
    paths = _pair_paths_of_sample(ds, index)
    taps = np.zeros((len(paths),) + paths[0][0].shape[:2] + (n_taps,), np.complex64)
    taps_w = np.zeros_like(taps)
    for i, (aa, echo_tau) in enumerate(paths):
        tau = np.concatenate([bg.tau[i], echo_tau]).astype(np.float64)
        d = cfrmod.dirichlet(n[None, :] / k - tau[:, None] * ds.scs_hz, k)  # [paths, n_taps + 4]
        full = (aa.reshape(-1, aa.shape[-1]).astype(np.complex128) @ d).reshape(aa.shape[0], aa.shape[1], -1)
        taps[i] = full[..., 2:-2]
        taps_w[i] = (0.42 * full[..., 2:-2] + 0.25 * (full[..., 3:-1] + full[..., 1:-3])
                     + 0.04 * (full[..., 4:] + full[..., :-4]))
    if noise:
        w = _noise(ds, index, taps.shape[1:3] + (k,), snr_offset_db)
        win = periodic_blackman(k).astype(np.float32)
        for i in range(len(w)):  # pair by pair: a pair's noise stays in cache for its two FFTs
            taps[i] += np.fft.ifft(np.fft.ifftshift(w[i], axes=-1), axis=-1)[..., :n_taps]
            taps_w[i] += np.fft.ifft(np.fft.ifftshift(w[i] * win, axes=-1), axis=-1)[..., :n_taps]
    return taps, taps_w
