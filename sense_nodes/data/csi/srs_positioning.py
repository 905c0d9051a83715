"""Uplink SRS CSI for UE positioning (kind ``diffloc``), after
``diffloc.txt`` Section V-A (Table III), scaled to a 2-core machine.

Scene and geometry. The paper's Tokyo UMa scene (NVIDIA AODT) is not
available; we use Sionna RT's ``munich``. ``4`` BSs (paper: 7) on rooftops,
found by casting rays down near the corners of a 220 m square around the
scene origin and mounting 3 m above the roof; the UE spawn zone is their
convex hull (Table III). Carrier 3.6 GHz (band n78). Each BS has a
dual-polarised 4 x 4 UPA (32 ports, 3GPP TR 38.901 element, looking at the
hull centre), each UE a dual-polarised 1 x 2 UPA (4 ports, isotropic), half-
wavelength spacing, UE height 1.5 m (the paper leaves it out).

Users and variants. Each user does a random walk at 1 Hz for 10 s (10
snapshots, Table III) on the street level inside the hull, turning by
N(0, 30 deg) each second and re-drawing its heading when a step would enter a
building or leave the hull. ``pedestrian`` users walk at U[1.5, 2.5] m/s;
``vehicular`` users (the high-speed variant of Section VI-B) at U[15, 25] m/s.
Every sample draws an SNR from {50, 40, 30, 20, 10} dB for the AWGN variant
(Section VI-B); the stored CFR is clean and the loader adds the noise on
request (``noise=True``), seeded, with the noise power relative to the
sample's mean channel power over all its BS links.

Frequency grid. 100 MHz at 30 kHz spacing has 3276 subcarriers (the paper
stores 4096); to keep a dataset on disk we keep every 24th: ``K = 128``
subcarriers 720 kHz apart (92 MHz span), centred on the carrier. The paper's
150-tap CIR truncation applies after ``ifftshift`` + IFFT by the consumer.
Absolute delays are kept (``normalize_delays=False``).

Tracing. The BSs are the sources and the UE positions the receivers
(about 10x faster than the reverse), ``cfr`` reversed to the uplink (UE ->
BS). ``PathSolver(deterministic=True)`` with ``max_depth = 4``, specular
reflection and diffraction (rooftop BSs see few street-level UEs without
diffraction) and diffuse reflection (every material scatters with
coefficient ``SCATTERING``: without it a quarter to a half of the links
of a street-level UE to a rooftop BS had no traced path, a ray-tracer
artefact; with it and 2.5e5 samples per source, a few percent remain),
fixed ``samples_per_src`` and seed, receivers traced in fixed chunks. UE
positions with no path to a BS are flagged in ``link_valid``.

Cramer-Rao bound. For every link the generator stores ``crb_fim``: the
Fisher information on the UE's (x, y) per unit noise variance, from the
traced paths treated as resolved and their geometry as known (what a
fingerprint map learns): each path's delay, whose gradient is the arrival
direction at the UE over c, measured over the K subcarriers and all antenna
pairs; and the line-of-sight path's direction across the BS aperture.
Divided by the noise variance of a sample's SNR it bounds the position
error (``sense_nodes.core.diffloc.crb``).

Splits. ``split_random``: random 3:1:1 over samples (Table III);
``split_user``: whole users held out 3:1:1 (the unseen-user test).

Layout of ``arrays.h5`` (S samples, B BSs, K subcarriers):

- ``H`` [S, B, 32, 4, K] complex64: uplink CFR ``[bs_port, ue_port, k]``
- ``ue_pos`` [S, 3] float32 (m), ``ue_vel`` [S, 3] float32 (m/s)
- ``user_id`` [S] int32, ``time_s`` [S] float32, ``variant`` [S] int8
  (0 pedestrian, 1 vehicular), ``snr_db`` [S] float32
- ``link_valid`` [S, B] bool, ``num_paths`` [S, B] int16,
  ``delay_spread_s`` [S, B] float32, ``crb_fim`` [S, B, 2, 2] float64
  (position Fisher information per unit noise variance, m^-2)
- ``split_random`` [S] int8, ``split_user`` [S] int8 (0/1/2 train/val/test)
- ``bs_pos`` [B, 3] float32
"""
from __future__ import annotations

import numpy as np
from scipy.constants import c as SPEED_OF_LIGHT  # m/s

from sense_nodes.data.csi import cfr as cfrmod
from sense_nodes.data.csi import dataset as dsmod
from sense_nodes.data.csi import rt

KIND = "diffloc"
SCENE = "munich"
CARRIER_HZ = 3.6e9
BASE_SCS_HZ = 30e3
STRIDE = 24
SCS_HZ = BASE_SCS_HZ * STRIDE
NUM_SUBCARRIERS = 128
NUM_BS = 4
BS_SQUARE_HALF = 110.0
BS_MAST = 3.0
UE_HEIGHT = 1.5
SNAPSHOTS, RATE_HZ = 10, 1.0
SNR_LEVELS_DB = (50.0, 40.0, 30.0, 20.0, 10.0)
SPEEDS = {"pedestrian": (1.5, 2.5), "vehicular": (15.0, 25.0)}
DEFAULT_USERS = {"pedestrian": 160, "vehicular": 40}  # 2000 samples, as Table III
TINY_USERS = {"pedestrian": 2, "vehicular": 1}
TINY_SNAPSHOTS = 3
SOLVER = dict(max_depth=4, los=True, specular_reflection=True, diffuse_reflection=True,
              refraction=False, diffraction=True, edge_diffraction=False,
              samples_per_src=250_000, max_num_paths_per_src=20_000, seed=3)
TINY_SOLVER = dict(SOLVER, max_depth=3, samples_per_src=20_000, max_num_paths_per_src=20_000)
# Diffuse scattering coefficient of every material (Lambertian); 0 turns
# diffuse reflection into a no-op in Sionna RT.
SCATTERING = 0.3
# Receivers per PathSolver call: memory grows with receivers x samples x depth
# (200 receivers with 2e5 samples at depth 4 needed over 20 GB; 50 with 1e5
# peak at about 3.3 GB).
RX_CHUNK = 50


def bs_positions(scene) -> np.ndarray:
    rng = np.random.default_rng(7)
    out = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        c = BS_SQUARE_HALF * np.array([sx, sy], float)
        cand = c + rng.uniform(-40, 40, size=(2000, 2))
        z = rt.surface_height(scene, cand)
        ok = np.flatnonzero(np.nan_to_num(z, nan=0.0) > 15.0)
        i = ok[np.argmin(np.linalg.norm(cand[ok] - c, axis=1))]
        out.append([cand[i, 0], cand[i, 1], z[i] + BS_MAST])
    return np.array(out)


def _in_hull(hull_xy: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Points [N, 2] inside the convex polygon (counter-clockwise)."""
    p = np.atleast_2d(p)
    inside = np.ones(len(p), bool)
    for k in range(len(hull_xy)):
        a, b = hull_xy[k], hull_xy[(k + 1) % len(hull_xy)]
        cross = (b[0] - a[0]) * (p[:, 1] - a[1]) - (b[1] - a[1]) * (p[:, 0] - a[0])
        inside &= cross >= 0
    return inside


def _walkable(scene, hull, xy):
    xy = np.atleast_2d(xy)
    z = rt.surface_height(scene, xy)
    return _in_hull(hull, xy) & (np.nan_to_num(z, nan=99.0) < 0.5)


def random_walks(scene, hull, users: dict, snapshots: int, rng):
    """Trajectories: list of (variant, positions [T, 3], velocities [T, 3])."""
    lo, hi = hull.min(0), hull.max(0)
    walks = []
    for vi, (variant, count) in enumerate(users.items()):
        for _ in range(count):
            while True:
                cand = rng.uniform(lo, hi, size=(64, 2))
                ok = np.flatnonzero(_walkable(scene, hull, cand))
                if ok.size:
                    p = cand[ok[0]]
                    break
            speed = rng.uniform(*SPEEDS[variant])
            heading = rng.uniform(0, 2 * np.pi)
            pos, vel = [], []
            for _t in range(snapshots):
                pos.append(p.copy())
                step = speed / RATE_HZ
                heading = heading + np.radians(rng.normal(0, 30))
                tries = heading + np.concatenate([[0.0], rng.uniform(0, 2 * np.pi, 31)])
                nxt = p[None] + step * np.c_[np.cos(tries), np.sin(tries)]
                okk = np.flatnonzero(_walkable(scene, hull, nxt))
                if okk.size:
                    heading = tries[okk[0]]
                    v = speed * np.array([np.cos(heading), np.sin(heading)])
                    p = nxt[okk[0]]
                else:  # boxed in: stand still this second
                    v = np.zeros(2)
                vel.append(v)
            pos = np.c_[np.array(pos), np.full(snapshots, UE_HEIGHT)]
            vel = np.c_[np.array(vel), np.zeros(snapshots)]
            walks.append((vi, pos, vel))
    return walks


def generate(out_dir, seed: int = 0, tiny: bool = False, users: dict | None = None,
             snapshots: int | None = None, cuda: bool = False, progress: bool = True):
    from tqdm import tqdm
    timer = dsmod.Timer()
    users = dict(users if users is not None else (TINY_USERS if tiny else DEFAULT_USERS))
    if any(v < 0 for v in users.values()) or sum(users.values()) < 1:
        raise ValueError("users must be >= 0 per variant and >= 1 in all")
    snapshots = int(snapshots or (TINY_SNAPSHOTS if tiny else SNAPSHOTS))
    srt = rt.setup(cuda)
    solver_cfg = TINY_SOLVER if tiny else SOLVER
    scene = rt.load_scene(SCENE, frequency_hz=CARRIER_HZ, cuda=cuda,
                          scattering_coefficient=SCATTERING if solver_cfg["diffuse_reflection"] else None)
    scene.tx_array = srt.PlanarArray(num_rows=4, num_cols=4, pattern="tr38901", polarization="cross")
    scene.rx_array = srt.PlanarArray(num_rows=1, num_cols=2, pattern="iso", polarization="cross")
    bs = bs_positions(scene)
    centre = bs[:, :2].mean(0)
    ang = np.arctan2(bs[:, 1] - centre[1], bs[:, 0] - centre[0])
    hull = bs[np.argsort(ang), :2]
    for b, p in enumerate(bs):
        scene.add(srt.Transmitter(name=f"bs{b}", position=rt.point(p),
                                  look_at=rt.point([centre[0], centre[1], UE_HEIGHT])))
    rng = np.random.default_rng(seed)
    walks = random_walks(scene, hull, users, snapshots, rng)
    pos = np.concatenate([w[1] for w in walks]).astype(np.float32)
    vel = np.concatenate([w[2] for w in walks]).astype(np.float32)
    uid = np.repeat(np.arange(len(walks)), snapshots).astype(np.int32)
    variant = np.repeat([w[0] for w in walks], snapshots).astype(np.int8)
    tsec = np.tile(np.arange(snapshots) / RATE_HZ, len(walks)).astype(np.float32)
    n = len(pos)
    snr = rng.choice(SNR_LEVELS_DB, size=n).astype(np.float32)
    freqs = cfrmod.subcarrier_offsets(NUM_SUBCARRIERS, SCS_HZ)
    H = np.zeros((n, NUM_BS, 32, 4, NUM_SUBCARRIERS), np.complex64)
    npaths = np.zeros((n, NUM_BS), np.int16)
    dspread = np.full((n, NUM_BS), np.nan, np.float32)
    fim = np.zeros((n, NUM_BS, 2, 2), np.float64)
    bs_elems = [rt.antenna_positions(scene.get(f"bs{b}"), scene.tx_array, SPEED_OF_LIGHT / CARRIER_HZ) - bs[b]
                for b in range(NUM_BS)]
    most = 0  # most paths one source had in one chunk (vs max_num_paths_per_src)
    bar = tqdm(total=n, desc="diffloc UE positions", disable=not progress, unit="pos")
    for c0 in range(0, n, RX_CHUNK):
        c1 = min(n, c0 + RX_CHUNK)
        names = [f"ue{i}" for i in range(c0, c1)]
        for i, nm in zip(range(c0, c1), names):
            scene.add(srt.Receiver(name=nm, position=rt.point(pos[i]), velocity=rt.point(vel[i])))
        paths = rt.solve_paths(scene, **solver_cfg)
        a, tau = cfrmod.cir_numpy(paths, reverse_direction=True)  # [bs, 32, ue, 4, p]
        h = cfrmod.cfr_from_cir(a, tau, freqs)
        H[c0:c1] = np.transpose(h, (2, 0, 1, 3, 4))
        cnt, ds_ = cfrmod.link_path_stats(a, tau)
        most = max(most, int(cnt.sum(axis=1).max()))
        npaths[c0:c1] = cnt.T
        dspread[c0:c1] = ds_.T
        fim[c0:c1] = link_fisher(paths, a, tau, freqs, pos[c0:c1], bs, bs_elems, CARRIER_HZ)
        for nm in names:
            scene.remove(nm)
        bar.update(c1 - c0)
    bar.close()
    link_valid = npaths > 0
    user_split = dsmod.random_split(len(walks), rng)
    secs = timer.seconds()
    manifest = {
        "kind": KIND, "scene": SCENE, "paper": "diffloc.txt Section V-A, Table III; Section VI-B variants",
        "num_samples": n, "tiny": tiny, "seed": seed, "code_version": dsmod.code_version(),
        "versions": rt.versions(), "variant": rt.variant(),
        "carrier_hz": CARRIER_HZ, "subcarrier_spacing_hz": SCS_HZ, "num_subcarriers": NUM_SUBCARRIERS,
        "base_subcarrier_spacing_hz": BASE_SCS_HZ, "subcarrier_stride": STRIDE, "bandwidth_hz": 100e6,
        "subcarriers": "centred baseband offsets (k - K//2) * spacing; ifftshift before an IFFT",
        "normalize_delays": cfrmod.NORMALIZE_DELAYS, "direction": "uplink SRS (UE -> BS)",
        "geometry": {"bs_pos_m": bs, "spawn_zone": "convex hull of the BSs", "hull_xy_m": hull,
                     "ue_height_m": UE_HEIGHT},
        "antenna_arrays": {"bs": {"rows": 4, "cols": 4, "polarization": "cross", "pattern": "tr38901",
                                  "ports": 32, "look_at": "hull centre at UE height"},
                           "ue": {"rows": 1, "cols": 2, "polarization": "cross", "pattern": "iso", "ports": 4}},
        "users": users, "snapshots_per_user": snapshots, "rate_hz": RATE_HZ,
        "speeds_m_s": SPEEDS, "variants": ["pedestrian", "vehicular"], "snr_levels_db": SNR_LEVELS_DB,
        "scattering_coefficient": SCATTERING if solver_cfg["diffuse_reflection"] else 0.0,
        "crb": "crb_fim: position Fisher information per unit noise variance (delays of all traced "
               "paths over K subcarriers and all antenna pairs, LoS direction over the BS aperture)",
        "awgn": "noise power = mean |H|^2 over the sample's links / 10^(snr_db/10); added by the loader",
        "solver": dict(solver_cfg, solver="PathSolver(deterministic=True)", rx_chunk=RX_CHUNK,
                       sources="BSs", receivers="UE positions", reverse_direction=True),
        "max_paths_per_src_seen": most,
        "links": [{"index": b, "tx_id": "ue", "rx_id": f"bs{b}"} for b in range(NUM_BS)],
        "split": {"schemes": {"random": {"array": "split_random", "ratios": [3, 1, 1]},
                              "user": {"array": "split_user", "ratios": [3, 1, 1],
                                       "unit": "whole users (unseen-user test)"}}},
        "scaling": {"knob": "users per variant and snapshots (sense data generate --users N "
                            "--vehicular-users N --snapshots T)",
                    "default": {"users": DEFAULT_USERS, "snapshots": SNAPSHOTS},
                    "paper": "7 BSs, 200 users x 10 snapshots, 4096 subcarriers",
                    "cost": "linear in users x snapshots x BSs; about 0.52 MB per sample"},
        "generation": {"seconds": secs, "samples_per_s": n / secs},
    }
    arrays = {"H": H, "ue_pos": pos, "ue_vel": vel, "user_id": uid, "time_s": tsec, "variant": variant,
              "snr_db": snr, "link_valid": link_valid, "num_paths": npaths, "delay_spread_s": dspread,
              "crb_fim": fim,
              "split_random": dsmod.random_split(n, rng), "split_user": user_split[uid].astype(np.int8),
              "bs_pos": bs.astype(np.float32)}
    return dsmod.write_dataset(out_dir, manifest, arrays)


def link_fisher(paths, a, tau, freqs, ue_pos, bs_pos, bs_elems, carrier_hz):
    """Fisher information on the UE's (x, y) per unit noise variance, per
    link: [n_ue, n_bs, 2, 2] (m^-2).

    ``a`` [bs, 32, ue, 4, p] and ``tau`` [bs, ue, p] are the uplink CIR
    (:func:`cfr.cir_numpy` reversed). Delay term: path p's CFR
    ``a_p exp(-j 2 pi f_k tau_p)`` changes with the UE position through
    ``d tau_p / d r = -u_p / c`` (u_p: arrival direction at the UE), giving
    ``2 sum_{ant,k} |a_p|^2 (2 pi f_k)^2 u u^T / c^2``. Angle term (LoS path
    only): the phase across BS element n, ``2 pi / lambda * e_n . u_bs``,
    moves with ``d u_bs / d r = (I - u u^T) / R``. Paths are treated as
    resolved (no cross-terms), so the bound is optimistic."""
    th = np.asarray(paths.theta_r, dtype=np.float64)  # [ue, bs, p]
    ph = np.asarray(paths.phi_r, dtype=np.float64)
    inter = np.asarray(paths.interactions)             # [depth, ue, bs, p]
    u = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph)], -1)  # [ue, bs, p, 2]
    pw = np.sum(np.abs(a) ** 2, axis=(1, 3)).transpose(1, 0, 2)           # [ue, bs, p]
    valid = (np.asarray(tau).transpose(1, 0, 2) >= 0) & (pw > 0)
    pw = np.where(valid, pw, 0.0)
    w2 = float(np.sum((2 * np.pi * np.asarray(freqs)) ** 2))
    out = 2 * w2 / SPEED_OF_LIGHT ** 2 * np.einsum("ubp,ubpi,ubpj->ubij", pw, u, u)
    los = valid & np.all(inter == 0, axis=0)
    k = 2 * np.pi * carrier_hz / SPEED_OF_LIGHT
    n_sub = len(freqs)
    for b in range(len(bs_pos)):
        d = np.asarray(ue_pos, np.float64) - bs_pos[b]          # [ue, 3]
        R = np.linalg.norm(d, axis=1)
        uu = d / R[:, None]
        G = (np.eye(3)[None] - uu[:, :, None] * uu[:, None, :]) / R[:, None, None]  # [ue, 3, 3]
        e = np.asarray(bs_elems[b], np.float64)
        e = e - e.mean(0)
        v = np.einsum("uij,nj->uni", G, e)[..., :2]             # [ue, n_el, 2]
        # one element position per polarisation pair: a's 32 ports are 2 per position
        per_pair = np.where(los[:, b], pw[:, b], 0.0).sum(-1) / (a.shape[1] * a.shape[3])
        ports_per_el = a.shape[1] / len(e)
        out[:, b] += 2 * k ** 2 * (per_pair * ports_per_el * a.shape[3] * n_sub)[:, None, None] \
            * np.einsum("uni,unj->uij", v, v)
    return out


def sample_links(ds, index: int, noise: bool = False):
    """Per-BS uplink CFRs ``H[bs_port 32, ue_port 4, k]`` of sample
    ``index`` (tx ``ue<user>``, rx ``bs<b>``); with ``noise`` AWGN at the
    sample's ``snr_db`` (seeded by the sample index), else clean (SNR inf)."""
    H = ds.arrays["H"][index]
    snr = float(ds.arrays["snr_db"][index])
    if noise:
        g = np.random.default_rng([int(ds.manifest["seed"]), int(index), 5])
        p = float(np.mean(np.abs(H) ** 2))
        var = p / 10 ** (snr / 10)
        H = H + (np.sqrt(var / 2) * (g.standard_normal(H.shape) + 1j * g.standard_normal(H.shape))).astype(np.complex64)
    else:
        snr = float("inf")
    uid = int(ds.arrays["user_id"][index])
    out = [dsmod.LinkCsi(f"ue{uid}", lk["rx_id"], lk["index"], H[lk["index"]].astype(np.complex64),
                         ds.carrier_hz, ds.scs_hz, snr) for lk in ds.links]
    truth = {"ue_pos": ds.arrays["ue_pos"][index], "ue_vel": ds.arrays["ue_vel"][index], "user_id": uid,
             "time_s": float(ds.arrays["time_s"][index]), "variant": int(ds.arrays["variant"][index]),
             "link_valid": ds.arrays["link_valid"][index]}
    truth["objects"] = [dsmod.truth_object(uid, 0, truth["ue_pos"], truth["ue_vel"],
                                           bool(truth["link_valid"].any()))]
    return dsmod.CsiSample(index, out, truth)
