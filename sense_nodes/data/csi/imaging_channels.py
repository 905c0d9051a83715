"""Multi-static imaging channels between cooperating BSs (kind
``imaging``), after ``offgrid_isac_imaging.txt`` Section V-C5 (3D ROI imaging
in Sionna) with the channel model of Eq. 7 / 10 / 11.

Scene and geometry. Sionna RT's ``simple_street_canyon``: a street along x,
about 17 m wide (y in [-8, 9]) and 125 m long between buildings of 29-51 m
(the paper's Hong Kong canyon is 50 m x 130 m with 60 m buildings; it is not
shipped with Sionna RT). Four BSs at the four corners of the canyon at
``h_bs = 10`` m (Section V-C5), each a full-duplex 5 x 5 UPA (Section V-C:
"antenna array size is 5x5"), half-wavelength spacing, isotropic, vertical
polarisation, facing the ROI centre. Carrier 2.6 GHz (Section V-A). The paper
leaves the subcarriers of V-C5 out; we take ``N_f = 6`` subcarriers over
``B = 40`` MHz as in Section V-B4. The 3D ROI is the canyon volume
x in [-50, 50], y in [-6.5, 8.5], z in [12.5, 52.5] m with ``d_0 = 5`` m voxels
(20 x 3 x 8; the paper's 40 m x 120 m x 40 m ROI does not fit this narrower
canyon). ``M = 8`` UAVs per sample (Section V-C5), off-grid (uniform in the
ROI), each a point target of RCS ~ N(0.01, 0.001) m^2 (Section V-A), clipped
at 1e-4, scattering coefficient sqrt(RCS).

Channels. Every BS transmits and every BS receives (monostatic and
multi-static, mode "A" of Section V-B2); by reciprocity only the
``N_b (N_b + 1) / 2 = 10`` unordered pairs (i <= j) are stored, link
``bs{i} -> bs{j}``. The target echo is traced per sample by Sionna RT's
``RCSSolver`` (transmitter -> target -> receiver paths; ``echo_max_depth = 1``
by default: both legs unobstructed, the cascaded model of Eq. 10); the
background scattered by the buildings is traced once by ``PathSolver``
without the BS-BS line of sight (which the paper's combiner removes), with
specular and diffuse reflections. The channel delivered is
``H = H_echo + sqrt(r) * H_background`` with ``r`` the *residual interference
ratio* of Table VI (a power ratio: the paper does not say whether power or
amplitude; 0.1 % by default, any ratio can be chosen at load time). The
traced background is about 60 dB stronger than the echoes of 0.01 m^2 UAVs
in this canyon (LoS-free but with the BS-BS ground bounce), so the loader can
also scale the residual relative to the echo power (``residual_reference``).

Layout of ``arrays.h5`` (S samples, L = 10 links, K subcarriers, M targets):

- ``H_echo`` [S, L, 25, 25, K] complex64: echo CFR, ``[rx_ant, tx_ant, k]``
- ``H_background`` [L, 25, 25, K] complex64: static building background
- ``target_pos`` [S, M, 3] float32 (m), ``target_rcs`` [S, M] float32 (m^2),
  ``target_sigma`` [S, M] float32 (scattering coefficient sqrt(RCS))
- ``voxel_image`` [S, 20, 3, 8] float32: sigma summed into the voxel holding
  each target (the ground-truth image of Section III-A)
- ``echo_paths`` [S, L] int16: number of traced echo paths per link
- ``echo_snr_db`` [S, L] float32: echo SNR with P_t = 40 dBm and
  P_n = -110 dBm per receive antenna (Section V-A / V-C)
- ``split_random`` [S] int8: 0/1/2 = train/val/test, 8:1:1 (the paper keeps
  10 % for validation and a separate test set)
- ``bs_pos`` [4, 3], ``voxel_centers`` [20, 3, 8, 3] float32

The analytic check (:func:`analytic_check`) puts one target of known RCS at
several ROI points, traces it with ``RCSSolver`` and compares every antenna
pair and subcarrier with Eq. 10/11 (``G_s = 1`` for isotropic antennas):
``h = lambda_0 sigma / ((4 pi)^{3/2} d_1 d_2) exp(-j 2 pi (d_1 + d_2) / lambda_f)``.
"""
from __future__ import annotations

import numpy as np
from scipy.constants import c as C  # speed of light, m/s

from sense_nodes.data.csi import cfr as cfrmod
from sense_nodes.data.csi import dataset as dsmod
from sense_nodes.data.csi import rt

KIND = "imaging"
SCENE = "simple_street_canyon"
CARRIER_HZ = 2.6e9
NUM_SUBCARRIERS = 6
BANDWIDTH_HZ = 40e6
SCS_HZ = BANDWIDTH_HZ / NUM_SUBCARRIERS
N0 = 5
BS_HEIGHT = 10.0
# Canyon corners of simple_street_canyon (street y in [-8, 9], buildings
# x in [-62, 62]), found by casting rays down on the scene.
BS_POS = np.array([[-60.0, -6.5, BS_HEIGHT], [60.0, -6.5, BS_HEIGHT],
                   [60.0, 7.5, BS_HEIGHT], [-60.0, 7.5, BS_HEIGHT]])
ROI_MIN = np.array([-50.0, -6.5, 12.5])
VOXEL = 5.0
ROI_SHAPE = (20, 3, 8)
NUM_TARGETS = 8
RCS_MEAN, RCS_VAR = 0.01, 0.001
PT_DBM, PN_DBM = 40.0, -110.0
RESIDUAL_RATIO = 1e-3
DEFAULT_SAMPLES = 1000
TINY_SAMPLES = 6
# Diffuse scattering of the building materials for the background; the paper
# gives none, 0.3 is a common choice for concrete and glass facades.
SCATTERING_COEFFICIENT = 0.3
BACKGROUND_SOLVER = dict(max_depth=2, los=False, specular_reflection=True,
                         diffuse_reflection=True, refraction=False, diffraction=False,
                         samples_per_src=200_000, max_num_paths_per_src=50_000, seed=7)
TINY_BACKGROUND_SOLVER = dict(BACKGROUND_SOLVER, samples_per_src=20_000,
                              max_num_paths_per_src=10_000)


def links():
    out = []
    for i in range(4):
        for j in range(i, 4):
            out.append({"index": len(out), "tx_id": f"bs{i}", "rx_id": f"bs{j}", "tx": i, "rx": j})
    return out


def voxel_centers() -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in ROI_SHAPE], indexing="ij"), -1)
    return (ROI_MIN + (idx + 0.5) * VOXEL).astype(np.float32)


def roi_max() -> np.ndarray:
    return ROI_MIN + VOXEL * np.array(ROI_SHAPE)


def _build_scene(cuda: bool = False, with_background_materials: bool = True):
    srt = rt.setup(cuda)
    scene = rt.load_scene(SCENE, frequency_hz=CARRIER_HZ,
                          scattering_coefficient=SCATTERING_COEFFICIENT if with_background_materials else None,
                          cuda=cuda)
    arr = srt.PlanarArray(num_rows=N0, num_cols=N0, vertical_spacing=0.5,
                          horizontal_spacing=0.5, pattern="iso", polarization="V")
    scene.tx_array = arr
    scene.rx_array = arr
    centre = (ROI_MIN + roi_max()) / 2
    for i, p in enumerate(BS_POS):
        scene.add(srt.Transmitter(name=f"tx{i}", position=rt.point(p), look_at=rt.point(centre)))
        scene.add(srt.Receiver(name=f"rx{i}", position=rt.point(p), look_at=rt.point(centre)))
    return scene


def _pairs_from_full(h):
    """[rx, rx_ant, tx, tx_ant, K] -> [L, rx_ant, tx_ant, K] over links."""
    return np.stack([h[lk["rx"], :, lk["tx"], :, :] for lk in links()])


def _add_targets(scene, count: int):
    """``count`` point targets of unit RCS; each sample's RCS is applied in
    numpy by :func:`_trace_echo` (changing ``sigma`` in Dr.Jit recompiles or
    re-evaluates the solver's kernels every sample, about 5x slower)."""
    from sionna.rt.rcs import ConstantRCSSensingTarget
    targets = []
    for m in range(count):
        t = ConstantRCSSensingTarget(name=f"uav{m}", sigma=1.0,
                                     position=rt.point(ROI_MIN - 100.0 * (m + 1)))
        scene.add(t)
        targets.append(t)
    return targets


def _target_index(paths) -> np.ndarray:
    """Index (in scene order) of the sensing target of each path [rx, tx, p]."""
    from sionna.rt.constants import InteractionType
    inter = np.asarray(paths.interactions.numpy())
    obj = np.asarray(paths.objects.numpy()).astype(np.int64)
    if inter.ndim == 6:  # not synthetic: take the first antenna pair
        inter, obj = inter[:, :, 0, :, 0], obj[:, :, 0, :, 0]
    sens = inter == int(InteractionType.SENSING)
    return np.max(np.where(sens, obj, -1), axis=0)


def _trace_echo(scene, targets, pos, rcs, seed, max_depth, samples_per_sp):
    from sionna.rt.rcs import RCSSolver
    for t, p in zip(targets, pos):
        t.position = rt.point(p)
    solver = RCSSolver(deterministic=True)
    paths = solver(scene, max_depth=max_depth, samples_per_sp=samples_per_sp,
                   buffer_size_per_sp=max(1000, samples_per_sp // 10), seed=int(seed))
    a, tau = cfrmod.cir_numpy(paths)
    tidx = _target_index(paths)
    amp = np.sqrt(np.asarray(rcs, dtype=np.float64))
    scale = np.where(tidx >= 0, amp[np.clip(tidx, 0, len(amp) - 1)], 0.0).astype(np.float32)
    a = a * scale[:, None, :, None, :]
    freqs = cfrmod.subcarrier_offsets(NUM_SUBCARRIERS, SCS_HZ)
    h = cfrmod.cfr_from_cir(a, tau, freqs)
    n, _ = cfrmod.link_path_stats(a, tau)
    return h, n


def generate(out_dir, seed: int = 0, tiny: bool = False, samples: int | None = None,
             residual_ratio: float = RESIDUAL_RATIO, echo_max_depth: int = 1,
             cuda: bool = False, progress: bool = True):
    """Generate the imaging dataset into ``out_dir``; returns its path."""
    from tqdm import tqdm
    timer = dsmod.Timer()
    n = int(samples if samples is not None else (TINY_SAMPLES if tiny else DEFAULT_SAMPLES))
    if n < 1:
        raise ValueError("samples must be >= 1")
    rng = np.random.default_rng(seed)
    scene = _build_scene(cuda)
    freqs = cfrmod.subcarrier_offsets(NUM_SUBCARRIERS, SCS_HZ)
    bg_cfg = TINY_BACKGROUND_SOLVER if tiny else BACKGROUND_SOLVER
    bg_paths = rt.solve_paths(scene, **bg_cfg)
    a_bg, tau_bg = cfrmod.cir_numpy(bg_paths)
    h_bg = _pairs_from_full(cfrmod.cfr_from_cir(a_bg, tau_bg, freqs))
    n_bg, ds_bg = cfrmod.link_path_stats(a_bg, tau_bg)
    targets = _add_targets(scene, NUM_TARGETS)
    L = len(links())
    hi = roi_max()
    pos = rng.uniform(ROI_MIN, hi, size=(n, NUM_TARGETS, 3)).astype(np.float32)
    rcs = np.clip(rng.normal(RCS_MEAN, np.sqrt(RCS_VAR), size=(n, NUM_TARGETS)), 1e-4, None).astype(np.float32)
    h_echo = np.zeros((n, L, N0 * N0, N0 * N0, NUM_SUBCARRIERS), np.complex64)
    echo_paths = np.zeros((n, L), np.int16)
    samples_per_sp = 2_000 if tiny else 10_000
    for i in tqdm(range(n), desc="imaging echoes", disable=not progress, unit="sample"):
        h, npath = _trace_echo(scene, targets, pos[i], rcs[i], seed * 100_003 + i,
                               echo_max_depth, samples_per_sp)
        h_echo[i] = _pairs_from_full(h)
        echo_paths[i] = [npath[lk["rx"], lk["tx"]] for lk in links()]
    image = np.zeros((n,) + ROI_SHAPE, np.float32)
    vidx = np.clip(np.floor((pos - ROI_MIN) / VOXEL).astype(int), 0, np.array(ROI_SHAPE) - 1)
    sigma = np.sqrt(rcs)
    for i in range(n):
        np.add.at(image[i], tuple(vidx[i].T), sigma[i])
    p_echo = np.mean(np.abs(h_echo) ** 2, axis=(2, 3, 4))
    with np.errstate(divide="ignore"):
        snr = (10 * np.log10(np.maximum(p_echo, 1e-30)) + PT_DBM - PN_DBM).astype(np.float32)
    secs = timer.seconds()
    manifest = {
        "kind": KIND, "scene": SCENE, "paper": "offgrid_isac_imaging.txt Section V-C5, Eq. 7/10/11",
        "num_samples": n, "tiny": tiny, "seed": seed, "code_version": dsmod.code_version(),
        "versions": rt.versions(), "variant": rt.variant(),
        "carrier_hz": CARRIER_HZ, "subcarrier_spacing_hz": SCS_HZ,
        "num_subcarriers": NUM_SUBCARRIERS, "bandwidth_hz": BANDWIDTH_HZ,
        "subcarriers": "centred baseband offsets (k - K//2) * spacing; ifftshift before an IFFT",
        "normalize_delays": cfrmod.NORMALIZE_DELAYS,
        "geometry": {"bs_pos_m": BS_POS, "bs_height_m": BS_HEIGHT, "roi_min_m": ROI_MIN,
                     "roi_max_m": hi, "voxel_m": VOXEL, "roi_shape": ROI_SHAPE,
                     "targets_per_sample": NUM_TARGETS,
                     "target_rcs_m2": {"mean": RCS_MEAN, "var": RCS_VAR, "min": 1e-4}},
        "antenna_arrays": {"bs": {"rows": N0, "cols": N0, "spacing_wavelengths": 0.5,
                                  "pattern": "iso", "polarization": "V", "ports": N0 * N0,
                                  "full_duplex": True, "look_at": "roi centre"}},
        "power": {"pt_dbm": PT_DBM, "pn_dbm_per_antenna": PN_DBM},
        "solver": {"echo": {"solver": "RCSSolver(deterministic=True)", "max_depth": echo_max_depth,
                            "samples_per_sp": samples_per_sp, "seed": f"{seed} * 100003 + sample"},
                   "background": dict(bg_cfg, solver="PathSolver(deterministic=True)",
                                      scattering_coefficient=SCATTERING_COEFFICIENT)},
        "channel": "H = H_echo + sqrt(residual_ratio) * H_background (power ratio)",
        "residual_ratio": residual_ratio, "residual_reference": "background",
        "links": [{k: v for k, v in lk.items() if k in ("index", "tx_id", "rx_id")} for lk in links()],
        "split": {"schemes": {"random": {"array": "split_random", "ratios": [8, 1, 1]}}},
        "scaling": {"knob": "samples (sense data generate --samples N)", "default": DEFAULT_SAMPLES,
                    "cost": "one RCSSolver call per sample (linear in samples); "
                            "about 0.3 MB per sample"},
        "background_paths_per_link": [int(n_bg[lk["rx"], lk["tx"]]) for lk in links()],
        "background_delay_spread_s": [float(ds_bg[lk["rx"], lk["tx"]]) for lk in links()],
        "generation": {"seconds": secs, "samples_per_s": n / secs},
    }
    arrays = {
        "H_echo": h_echo, "H_background": h_bg, "target_pos": pos, "target_rcs": rcs,
        "target_sigma": sigma.astype(np.float32), "voxel_image": image, "echo_paths": echo_paths,
        "echo_snr_db": snr, "split_random": dsmod.random_split(n, rng, (8, 1, 1)),
        "bs_pos": BS_POS.astype(np.float32), "voxel_centers": voxel_centers(),
    }
    return dsmod.write_dataset(out_dir, manifest, arrays)


def sample_links(ds, index: int, residual_ratio: float | None = None,
                 residual_reference: str | None = None, noise: bool = False):
    """Per-link CFRs ``H[rx_ant 25, tx_ant 25, k]`` of sample ``index``:
    ``H_echo + g H_background``. With ``residual_reference="background"``
    (the manifest's default) ``g = sqrt(r)``: the residual keeps ``r`` of
    the traced background power. With ``"echo"`` the residual power of each
    link is ``r`` times that link's echo power in this sample (the ray-traced
    background is about 60 dB above the echoes here, so Table VI's ratios
    read more like this). ``r`` = ``residual_ratio`` or the manifest's.
    With ``noise``, AWGN at P_n / P_t (seeded by the sample index)."""
    r = ds.manifest["residual_ratio"] if residual_ratio is None else float(residual_ratio)
    ref = residual_reference or ds.manifest.get("residual_reference", "background")
    he = ds.arrays["H_echo"][index]
    hb = ds.arrays["H_background"]
    if ref == "background":
        g = np.full(len(hb), np.sqrt(r))
    elif ref == "echo":
        pe = np.mean(np.abs(he) ** 2, axis=(1, 2, 3))
        pb = np.mean(np.abs(hb) ** 2, axis=(1, 2, 3))
        g = np.sqrt(r * pe / np.maximum(pb, 1e-300))
    else:
        raise ValueError(f"residual_reference must be 'background' or 'echo', not {ref!r}")
    h = he + g.astype(np.float32)[:, None, None, None] * hb
    snr = ds.arrays["echo_snr_db"][index]
    if noise:
        gen = np.random.default_rng([int(ds.manifest["seed"]), index, 1])
        var = 10 ** ((PN_DBM - PT_DBM) / 10)
        h = h + (np.sqrt(var / 2) * (gen.standard_normal(h.shape) + 1j * gen.standard_normal(h.shape))).astype(np.complex64)
    out = []
    for lk in ds.links:
        out.append(dsmod.LinkCsi(lk["tx_id"], lk["rx_id"], lk["index"], h[lk["index"]].astype(np.complex64),
                                 ds.carrier_hz, ds.scs_hz, float(snr[lk["index"]])))
    truth = {"target_pos": ds.arrays["target_pos"][index], "target_sigma": ds.arrays["target_sigma"][index],
             "voxel_image": ds.arrays["voxel_image"][index]}
    paths = ds.arrays["echo_paths"][index]
    truth["objects"] = [dsmod.truth_object(m, 1, p, visible=bool(paths.any()))
                        for m, p in enumerate(truth["target_pos"])]
    return dsmod.CsiSample(index, out, truth)


def echo_vs_cascaded_model(scene, target, tx_names, rx_names, points, rcs: float,
                           carrier_hz: float, freqs_hz, seed: int = 0) -> dict:
    """Trace a single point target of RCS ``rcs`` (the scene's only sensing
    target, ``target``) at each of ``points`` with ``RCSSolver`` (LoS legs)
    and compare every (rx, tx) device pair, antenna pair and subcarrier with
    the cascaded model of Eq. 10/11 (``G_s = 1``, isotropic antennas):
    ``h = lambda_0 sigma / ((4 pi)^{3/2} d_1 d_2) exp(-j 2 pi (d_1 + d_2) / lambda_f)``
    with ``sigma = sqrt(rcs)`` and exact per-antenna distances."""
    from sionna.rt.rcs import RCSSolver
    lam0 = C / carrier_hz
    freqs = carrier_hz + np.asarray(freqs_hz, dtype=np.float64)
    tx_ant = [rt.antenna_positions(scene.get(n), scene.tx_array, lam0) for n in tx_names]
    rx_ant = [rt.antenna_positions(scene.get(n), scene.rx_array, lam0) for n in rx_names]
    ph_err, amp_err = [], []
    for k, p in enumerate(points):
        p = np.asarray(p, dtype=np.float64)
        target.position = rt.point(p)
        paths = RCSSolver(deterministic=True)(scene, max_depth=1, samples_per_sp=10_000,
                                              buffer_size_per_sp=2_000, seed=int(seed + k))
        a, tau = cfrmod.cir_numpy(paths)
        a = a * np.float32(np.sqrt(rcs))  # the target has unit RCS
        h = cfrmod.cfr_from_cir(a, tau, np.asarray(freqs_hz, dtype=np.float64))
        npath, _ = cfrmod.link_path_stats(a, tau)
        for r in range(len(rx_names)):
            for t in range(len(tx_names)):
                if npath[r, t] == 0:
                    continue
                d1 = np.linalg.norm(tx_ant[t] - p, axis=1)  # [tx_ant]
                d2 = np.linalg.norm(rx_ant[r] - p, axis=1)  # [rx_ant]
                amp = lam0 * np.sqrt(rcs) / ((4 * np.pi) ** 1.5 * d2[:, None] * d1[None, :])
                dd = d2[:, None, None] + d1[None, :, None]
                h_an = amp[..., None] * np.exp(-2j * np.pi * dd * freqs / C)
                h_rt = h[r, :, t, :, :]
                ph_err.append(np.abs(np.angle(h_rt / h_an)).ravel())
                amp_err.append(np.abs(20 * np.log10(np.abs(h_rt) / np.abs(h_an))).ravel())
    ph = np.concatenate(ph_err) if ph_err else np.array([np.nan])
    am = np.concatenate(amp_err) if amp_err else np.array([np.nan])
    return {"analytic_phase_error_rad": float(np.mean(ph)),
            "analytic_phase_error_max_rad": float(np.max(ph)),
            "analytic_amplitude_error_db": float(np.mean(am)),
            "analytic_amplitude_error_max_db": float(np.max(am)),
            "analytic_points": len(points), "analytic_entries": int(ph.size)}


def analytic_check(points=None, rcs: float = RCS_MEAN, seed: int = 0, cuda: bool = False) -> dict:
    """Ray-traced single-target echo vs Eq. 10/11 in the imaging geometry,
    over all 16 ordered BS pairs, 25 x 25 antenna pairs and K subcarriers, at
    ``points`` (default: 5 points in the ROI). Returns mean / max absolute
    phase error [rad] and amplitude error [dB] over the entries with an echo."""
    scene = _build_scene(cuda, with_background_materials=False)
    targets = _add_targets(scene, 1)
    if points is None:
        c = (ROI_MIN + roi_max()) / 2
        points = [c, c + [20, 2, 10], c + [-35, -4, -12], c + [40, 5, 18], c + [-10, 1, -18]]
    return echo_vs_cascaded_model(scene, targets[0], [f"tx{i}" for i in range(4)],
                                  [f"rx{i}" for i in range(4)], points, rcs, CARRIER_HZ,
                                  cfrmod.subcarrier_offsets(NUM_SUBCARRIERS, SCS_HZ), seed)
