"""The deployable imager: checkpoint -> (voxel image, detections). This is the
one entry point the ``isac_imager`` node calls."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sense_nodes.core.imaging.backprojection import FactoredBackProjector, bp_features
from sense_nodes.core.imaging.detection import DETECTION_THRESHOLD, find_targets
from sense_nodes.core.imaging.geometry import ImagingConfig, n_measurements, voxel_centres
from sense_nodes.core.imaging.sensing_matrix import build_sensing_matrix
from sense_nodes.core.imaging.subspace_pursuit import sp_image

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


@dataclass
class Detection:
    voxel: int               # the target's strongest voxel
    position: np.ndarray     # value-weighted centroid of its voxels, metres
    value: float             # estimated sigma / 0.1 m at that voxel


def detect(image: np.ndarray, cfg: ImagingConfig, threshold: float = DETECTION_THRESHOLD):
    """Detected targets of ``image`` (Sec. V-A, see ``detection``): connected groups of
    voxels at or above ``threshold``, one Detection each."""
    img = np.asarray(image).reshape(cfg.grid_shape)
    return [Detection(t.peak_voxel, t.position, t.peak)
            for t in find_targets(img, voxel_centres(cfg), threshold)]


class SpImager:
    """Subspace pursuit (Algorithm 1, on-grid) behind the imager interface:
    ``image(y)`` gives the voxel image and its detections, as the learned
    and gridless imagers do, so a node can switch solvers."""

    def __init__(self, cfg: ImagingConfig, threshold: float, sparsity: int):
        self.cfg, self.threshold, self.sparsity = cfg, threshold, sparsity
        self.S = build_sensing_matrix(cfg)

    def image(self, y):
        vox = sp_image(self.S, y, self.sparsity).reshape(self.cfg.grid_shape)
        return vox, detect(vox, self.cfg, self.threshold)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        device = default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    return torch.device(device)


PRECISIONS = ("auto", "float32", "bfloat16")


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 convolutions run natively here (oneDNN on AVX-512 BF16 / AMX CPUs)."""
    if device.type != "cpu":
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class InferenceNet:
    """A network frozen for inference: float32 in, float32 out, whatever it runs in."""

    def __init__(self, module, dtype: torch.dtype, memory_format: torch.memory_format):
        self.module, self.dtype, self.memory_format = module, dtype, memory_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if x.dim() == 4:
            x = x.contiguous(memory_format=self.memory_format)
        return self.module(x).float()


def optimize_for_inference(net: torch.nn.Module, device: torch.device,
                           precision: str = "auto") -> InferenceNet:
    """Script and freeze the network (folds batch norm into the convolutions), 2D
    convolutions in channels-last layout, and on CPUs with native bfloat16
    (``precision="auto"``) weights and activations in bfloat16: together about
    4x faster per 2D frame than eager float32 on this project's CPUs. The
    output is float32 either way. Falls back to the eager module where
    scripting is not possible."""
    import copy
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} must be one of {PRECISIONS}")
    bf16 = precision == "bfloat16" or (precision == "auto" and bf16_supported(device))
    dtype = torch.bfloat16 if bf16 else torch.float32
    net = copy.deepcopy(net).to(device).eval().to(dtype)
    conv2d = any(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    fmt = torch.channels_last if conv2d else torch.contiguous_format
    net = net.to(memory_format=fmt)
    try:
        module = torch.jit.freeze(torch.jit.script(net))
    except Exception:  # noqa: BLE001 - any scripting failure keeps eager mode
        module = net
    return InferenceNet(module, dtype, fmt)


class Imager:
    """Physics-embedded imager (Fig. 6): A^H y (Eq. 20) -> residual CNN -> image."""

    def __init__(self, net: torch.nn.Module, cfg: ImagingConfig, train_cfg: dict,
                 device: torch.device, threshold: float = DETECTION_THRESHOLD,
                 precision: str = "auto"):
        self.net = optimize_for_inference(net, device, precision)
        self.cfg = cfg
        self.train_cfg = train_cfg
        self.device = device
        self.threshold = threshold
        self._S = None
        self.back_project = FactoredBackProjector(cfg)   # A^H y without streaming A
        self.n_measurements = n_measurements(cfg)

    @property
    def S(self):
        """The dense sensing matrix, built on first use (only SP inputs need it)."""
        if self._S is None:
            self._S = build_sensing_matrix(self.cfg)
        return self._S

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None,
                        precision: str = "auto") -> "Imager":
        """Load a checkpoint written by ``sense train imaging`` (CPU or CUDA)."""
        from sense_nodes.core.imaging.training import load_network
        net, cfg, train_cfg = load_network(path)
        return cls(net, cfg, train_cfg, pick_device(device), precision=precision)

    def features(self, y: np.ndarray) -> np.ndarray:
        """Network input for a batch (n, N_1) of CSI vectors."""
        kind = self.train_cfg["input"]
        y = np.atleast_2d(np.asarray(y, np.complex64))
        if kind == "bp":
            return bp_features(self.back_project(y), self.cfg.grid_shape)
        if kind == "sp":
            imgs = np.stack([sp_image(self.S, yi, self.train_cfg["sparsity"]) for yi in y])
            return imgs.reshape((len(y), 1) + self.cfg.grid_shape)
        scale = 1.0 / np.sqrt(self.cfg.noise_var)
        return (np.concatenate([y.real, y.imag], axis=1) * scale).astype(np.float32)

    @torch.inference_mode()
    def forward(self, feats: np.ndarray) -> np.ndarray:
        out = self.net(torch.from_numpy(feats).to(self.device))
        return out.float().cpu().numpy()

    def image(self, y: np.ndarray):
        """One CSI vector y (N_1,) complex, rows ordered as ``sensing_matrix`` ->
        (voxels: float32 array of ``cfg.grid_shape`` in sigma / 0.1 m units,
        detections: list of Detection)."""
        y = np.asarray(y)
        if y.shape != (self.n_measurements,):
            raise ValueError(f"y has shape {y.shape}, expected ({self.n_measurements},)")
        vox = self.forward(self.features(y))[0]
        return vox, detect(vox, self.cfg, self.threshold)


def stack_measurements(cfg: ImagingConfig, channels) -> np.ndarray:
    """y of Eq. 14 from per-pair CSI: ``channels[(b1, b2)]`` is the LS estimate
    H_hat (Eq. 9) of shape (N_f, N0^2, N0^2) [subcarrier, tx antenna, rx
    antenna] for every pair the sensing mode uses (``measurement_pairs``),
    stacked in A's row order. A missing pair is an error naming it."""
    from sense_nodes.core.imaging.geometry import measurement_pairs
    parts = []
    shape = (cfg.n_subcarriers, cfg.n_antennas, cfg.n_antennas)
    for pair in measurement_pairs(cfg):
        if pair not in channels:
            raise ValueError(f"CSI for BS pair {pair} missing (mode {cfg.mode} needs "
                             f"{measurement_pairs(cfg)})")
        h = np.asarray(channels[pair])
        if h.shape != shape:
            raise ValueError(f"CSI for BS pair {pair} has shape {h.shape}, expected {shape}")
        parts.append(h.reshape(-1))
    return np.concatenate(parts).astype(np.complex64)
