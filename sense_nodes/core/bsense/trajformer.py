"""TrajFormer: Transformer trajectory classifier (BSense paper, Section 3.4.2,
Figure 9).

Input: the last W observations of a track (W = 6, paper), each with spatial
motion and signal features. The encoder (Transformer encoder) reads the W
observations; the decoder takes the current observation as its query (Q)
and the encoder outputs as keys and values (K, V); a linear layer and a
softmax give P(true target), P(false).

Sizes are not in the paper; ours (small, "lightweight"): model width 32,
4 heads, 2 encoder layers, 1 decoder layer, feed-forward 64, dropout 0.1.

Features per observation (:func:`window_features`, 18 + 4 + 4 values, our
choice; the paper says "spatial motion and signal features"): position
relative to the current observation (translation invariant), range and
height (ghosts sit mid-air at 100-300 m, Section 3.3), velocity estimate,
Doppler, the five signal metrics, the number of points, the object's spatial
and velocity confidences (Eq. 13, 16) and the IMM's probability of the
turning model; then four frame-to-frame motion changes
(:func:`motion_features`: heading, speed, height, Doppler against the
track's motion); then four statistics of the track's whole kept history,
longer than the window (:func:`track_features`: echo cross-section, height
spread, median turn, how many observations they rest on), the same on every
row. A network trained without the last eight or four (its config says 18
or 22) is fed 18 or 22.
They are standardised with mean / std stored in the checkpoint.

What the last three add is measured by ``sense eval trajformer`` (15
against 18 features, same folds, seeds and epochs). Folds 2 and 4 of the
5-fold split, 2 seeds, 8 epochs, on the test cases' tracks: the false tracks
scoring above the score that keeps 80% of the true ones fell from 177 to 36
on average (track-level ROC AUC 0.941 -> 0.974, window-level 0.971 ->
0.990). Through ``sense eval bsense`` (all five folds) the system's F1 rose
from 51.1% to 65.6%. Birds wander, and multipath ghosts move with the
vehicles they mirror; both show in how the IMM weighs its two models, and
the confidences summarise more frames than W. The motion and track
statistics are ablated the same way (22 and 26 features beside 15 and 18).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sense_nodes.core import checkpoint as ckpt

from .imm_ukf import ORIGIN

BASE_FEATURES = 18      # position, motion and signal features (see window_features)
MOTION_FEATURES = 4     # frame-to-frame motion changes (see motion_features)
TRACK_FEATURES = 4      # statistics of the track's kept history (see track_features)
WINDOW_FEATURES = BASE_FEATURES + MOTION_FEATURES
N_FEATURES = WINDOW_FEATURES + TRACK_FEATURES
FEATURE_COUNTS = (BASE_FEATURES, WINDOW_FEATURES, N_FEATURES)     # what networks of each kind read
# the TrajFormer shipped with the package (`sense train trajformer --ship`)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "trajformer.pt"
CHECKPOINT_KIND = "bsense-trajformer"
CHECKPOINT_VERSION = 2     # 2: 18 features (1: 15)


def window_features(obs: np.ndarray, origin=ORIGIN, n_features: int = N_FEATURES,
                    track: np.ndarray | None = None) -> np.ndarray:
    """(..., W, n_features) features from (..., W, 16) tracker observations
    (x y z vx vy vz doppler snr scr noise signal_power rx_power n_points c_s
    c_v mu_ct, see ``tracker.OBS_FIELDS``); the last row is the current
    observation. The first ``BASE_FEATURES`` are position, motion and signal
    features; the ``MOTION_FEATURES`` after them are :func:`motion_features`,
    the last ``TRACK_FEATURES`` the (..., TRACK_FEATURES) ``track`` statistics
    of each window's whole track history (:func:`track_features`; None: of the
    window's own rows), repeated on every row. ``n_features`` of
    ``FEATURE_COUNTS`` short of N_FEATURES: without the later groups, as
    networks trained before them read."""
    obs = np.asarray(obs, dtype=np.float32)
    p = obs[..., :3]
    rel = p - p[..., -1:, :]
    d = p - np.asarray(origin, np.float32)
    rng = np.linalg.norm(d, axis=-1, keepdims=True)
    base = np.concatenate([rel, rng, p[..., 2:3], obs[..., 3:]], -1)
    if n_features not in FEATURE_COUNTS:
        raise ValueError(f"n_features must be one of {FEATURE_COUNTS}, got {n_features}")
    if n_features == BASE_FEATURES:
        return base
    parts = [base, motion_features(obs, origin)]
    if n_features == N_FEATURES:
        trk = track_features(obs, origin) if track is None else np.asarray(track, np.float32)
        parts.append(np.broadcast_to(trk[..., None, :], obs.shape[:-1] + (TRACK_FEATURES,)))
    return np.concatenate(parts, -1)


def motion_features(obs: np.ndarray, origin=ORIGIN) -> np.ndarray:
    """(..., W, 4) per observation, against the one before it (0 for the
    first): heading change of the tracker's velocity (rad, wrapped), speed
    change (m/s), measured height change (m), and the Doppler minus the
    tracker's velocity projected on the line of sight (m/s).

    Why (our choice, beyond the paper's list): a UAV flies straight legs at
    constant speed and height, whose Doppler is its motion seen from the
    base station; a bird wanders in heading and height, and a ghost's
    Doppler need not match how it moves. The encoder could learn these
    differences from the rows themselves; a small network given them
    directly needs fewer windows to do so."""
    obs = np.asarray(obs, dtype=np.float32)
    p, v, dop = obs[..., :3], obs[..., 3:6], obs[..., 6]
    heading = np.arctan2(v[..., 1], v[..., 0])
    speed = np.linalg.norm(v, axis=-1)
    d = p - np.asarray(origin, np.float32)
    los = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-6)
    resid = dop - (v * los).sum(-1)

    def step(x):
        out = np.zeros_like(x)
        out[..., 1:] = x[..., 1:] - x[..., :-1]
        return out
    turn = np.angle(np.exp(1j * step(heading))).astype(np.float32)
    return np.stack([turn, step(speed), step(p[..., 2]), resid], -1)


# a heading is read only from a velocity estimate at least this fast (m/s): a
# track's first observation carries none, and a hovering target's is noise
MIN_HEADING_SPEED = 0.5


def track_features(history, origin=ORIGIN) -> np.ndarray:
    """(..., TRACK_FEATURES) statistics of a track's observations (..., H, 16),
    oldest first (the tracker keeps up to ``TrackerConfig.history``, longer
    than the window W):

    * echo cross-section (dB, up to the radar equation's constant): SNR times
      range^4 (the monostatic radar equation), averaged in power over the
      history. One frame's SNR fluctuates by several dB (Swerling 1), so a
      window of W says little; the mean of a few dozen settles. Birds' cross
      sections span a decade, a UAV of one class has one;
    * height spread (m): the standard deviation of the measured heights. A UAV
      holds its altitude, a bird climbs and sinks;
    * median turn (rad per observation): the median of the absolute heading
      changes of the tracker's velocity. A bird turns all the time; a UAV flies
      straight legs or a steady arc, and the median passes over its corners;
    * the number of observations these rest on.

    Why (our choice, beyond the paper's feature list): birds were most of the
    full system's false outputs, and within six frames a bird's wandering
    hides under the measurement noise; over twenty seconds it does not. The
    paper's TrajFormer reads W observations and credits its multi-frame motion
    patterns for telling birds apart (Section 3.4.2, Section 4.2)."""
    h = np.asarray(history, dtype=np.float64)
    p, v, snr = h[..., :3], h[..., 3:6], h[..., 7]
    rng = np.maximum(np.linalg.norm(p - np.asarray(origin, np.float64), axis=-1), 1.0)
    rcs = 10.0 * np.log10(np.mean(10.0 ** (snr / 10.0 + 4.0 * np.log10(rng)), axis=-1))
    height_sd = np.std(p[..., 2], axis=-1)
    speed = np.linalg.norm(v[..., :2], axis=-1)
    heading = np.arctan2(v[..., 1], v[..., 0])
    turn = np.abs(np.angle(np.exp(1j * (heading[..., 1:] - heading[..., :-1]))))
    moving = (speed[..., 1:] >= MIN_HEADING_SPEED) & (speed[..., :-1] >= MIN_HEADING_SPEED)
    med = nanmedian_last(np.where(moving, turn, np.nan))
    med = np.where(np.isnan(med), 0.0, med)     # no turn read: none
    n = np.full(h.shape[:-2], float(h.shape[-2]))
    return np.stack([rcs, height_sd, med, n], -1).astype(np.float32)


def nanmedian_last(x: np.ndarray) -> np.ndarray:
    """``np.nanmedian(x, axis=-1)`` (NaN where a row has no number), the
    same values to the bit: the middle one of a row's sorted numbers, or
    the sum of the middle two halved, as numpy computes them. Why not numpy's:
    it takes a masked-array path for short rows, which made the median turn
    most of TrajFormer's per-frame feature time."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    s = np.sort(x, axis=-1)                 # NaNs sort last
    k = np.count_nonzero(~np.isnan(x), axis=-1)
    hi = k // 2
    lo = np.where(k % 2 == 1, hi, hi - 1)
    last = x.shape[-1] - 1
    a = np.take_along_axis(s, np.clip(lo, 0, last)[..., None], -1)[..., 0]
    b = np.take_along_axis(s, np.clip(hi, 0, last)[..., None], -1)[..., 0]
    return np.where(k > 0, (a + b) / 2.0, np.nan)


def history_windows(tracks, window: int, origin=ORIGIN, n_features: int = N_FEATURES) -> np.ndarray:
    """(len(tracks), W, n_features) features of the latest W observations of
    each track (anything with a ``history`` of >= W observation rows), with
    the statistics of its whole history (:func:`track_features`)."""
    hist = [np.asarray(t.history, np.float32) for t in tracks]
    obs = np.stack([h[-window:] for h in hist])
    trk = None
    if n_features == N_FEATURES:      # one call per history length (most tracks have a full one)
        trk = np.empty((len(hist), TRACK_FEATURES), np.float32)
        lengths = np.array([len(h) for h in hist])
        for n in np.unique(lengths):
            idx = np.flatnonzero(lengths == n)
            trk[idx] = track_features(np.stack([hist[i] for i in idx]), origin)
    return window_features(obs, origin, n_features, trk)


def features_of(classifier) -> int:
    """How many features a classifier reads: its config's ``n_features``
    (a network trained before the motion or the track features reads
    BASE_FEATURES or WINDOW_FEATURES), else N_FEATURES."""
    return int(getattr(getattr(classifier, "config", None), "n_features", N_FEATURES))


@dataclass(frozen=True)
class TrajFormerConfig:
    """Network sizes (our choices, see module doc) and the window W (paper: 6)."""
    window: int = 6
    n_features: int = N_FEATURES
    d_model: int = 32
    n_heads: int = 4
    n_encoder_layers: int = 2
    n_decoder_layers: int = 1
    d_ff: int = 64
    dropout: float = 0.1


class TrajFormer(nn.Module):
    """Encoder over the window, decoder with the current observation as the
    query, linear + softmax over (false, true) (Figure 9). ``forward(x)``
    takes raw features (B, W, N_FEATURES) and returns logits (B, 2)."""

    def __init__(self, config: TrajFormerConfig = TrajFormerConfig()):
        super().__init__()
        c = self.config = config
        self.register_buffer("feat_mean", torch.zeros(c.n_features))
        self.register_buffer("feat_std", torch.ones(c.n_features))
        self.embed = nn.Linear(c.n_features, c.d_model)
        self.pos = nn.Parameter(torch.zeros(1, c.window, c.d_model))
        nn.init.normal_(self.pos, std=0.02)
        enc = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc, c.n_encoder_layers, enable_nested_tensor=False)
        dec = nn.TransformerDecoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(dec, c.n_decoder_layers)
        self.head = nn.Linear(c.d_model, 2)

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Feature standardisation from training data (stored with the weights)."""
        self.feat_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feat_std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.feat_mean) / self.feat_std
        h = self.embed(x) + self.pos[:, -x.shape[1]:]
        mem = self.encoder(h)
        q = h[:, -1:]                          # current observation as the query
        out = self.decoder(q, mem)
        return self.head(out[:, 0])

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """P(true target) for (B, W, N_FEATURES) feature windows (eval mode, no autograd)."""
        if len(windows) == 0:
            return np.zeros(0)
        if self.training:       # eval() walks every submodule: ~0.1 ms a frame when done always
            self.eval()
        dev = self.feat_mean.device
        with torch.inference_mode():
            logits = self(torch.as_tensor(np.asarray(windows, np.float32), device=dev))
            return torch.softmax(logits, -1)[:, 1].cpu().numpy()


def single_thread_inference() -> None:
    """One torch CPU thread for per-frame inference. A frame's batch is a
    few windows; with several threads torch's workers wait on each other and
    on any other busy process (measured: a 250 ms median per frame on a busy
    2-core machine against well under 1 ms with one thread)."""
    torch.set_num_threads(1)


def save_checkpoint(model: TrajFormer, path, **extra) -> Path:
    """Checkpoint with its config, through the shared safe writer."""
    return ckpt.save_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION,
                                config=asdict(model.config), state_dict=model.state_dict(), extra=extra)


def load_checkpoint(path, device: str | torch.device = "cpu") -> TrajFormer:
    """A TrajFormer from :func:`save_checkpoint`'s file (CPU or CUDA).

    Raises :class:`~sense_nodes.core.checkpoint.CheckpointError` (a
    ValueError) naming the file when it cannot be used."""
    return from_checkpoint(ckpt.load_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION), device)


def from_checkpoint(ck: ckpt.Checkpoint, device: str | torch.device = "cpu") -> TrajFormer:
    """The TrajFormer of a verified :class:`~sense_nodes.core.checkpoint.Checkpoint` of this kind."""
    try:
        model = TrajFormer(TrajFormerConfig(**ck.config))
    except TypeError as exc:
        raise ckpt.CheckpointError(f"{ck.path}: config does not describe a TrajFormer ({exc})") from None
    ckpt.load_state(model, ck)
    model.checkpoint_extra = ck.extra
    return model.to(device).eval()
