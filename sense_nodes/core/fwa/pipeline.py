"""The one chain of cooperative sensing, used by the nodes and by the
evaluation alike (Fig. 3 and Fig. 5):

BS side (:class:`BsEncoder`, one per BS)
    round 1: CFRs of its pairs -> P(H) -> I-UDetNet embeddings h^(m,n)
    round 2: for the pairs the centre selected -> I-ULocNet (p^(l), v^(l))
Fusion centre (:class:`FusionCentre`)
    detection: embeddings of the pairs that arrived -> C-UDetNet -> presence
    probability, attention a_{m,n} -> decision (>= threshold) -> selection
    (Eq. 16); localization: the (p, v, e) that arrived -> C-ULocNet -> p^

The batched functions (:func:`encode`, :func:`detect`, :func:`locate`,
:func:`fuse`) are what both sides call; the eval runs them over many scenes.

Models are stored with :mod:`sense_nodes.core.checkpoint` (kinds
``fwa_detector``, ``fwa_ulocnet``, ``fwa_culocnet``, and the baselines
``fwa_pair_sl``, ``fwa_soft_fusion``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sense_nodes.core.checkpoint import CheckpointError, load_checkpoint, load_state, save_checkpoint
from sense_nodes.core.fwa.background import BackgroundModel
from sense_nodes.core.fwa.classical import beam_delay_map
from sense_nodes.core.fwa.fusion import CULocNet, SoftFusionNet
from sense_nodes.core.fwa.preprocess import preprocess
from sense_nodes.core.fwa.selection import select_pairs
from sense_nodes.core.fwa.udetnet import CUDetNet, IUDetNet, PairSupervisedNet
from sense_nodes.core.fwa.ulocnet import POS_SCALE, IULocNet  # noqa: F401 (re-exported)

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
# The shipped model sets by name: "bdz" (also "", the nodes' default: input
# "bdz", needs nothing beyond the models and runs on the default dataset),
# "nulled" the networks on background-nulled input (nulled.py: they need the
# dataset and the subspace calibration they were trained with; the set the
# evaluation measures by default).
SHIPPED = {"": CHECKPOINT_DIR, "bdz": CHECKPOINT_DIR, "nulled": CHECKPOINT_DIR / "nulled"}
VERSION = 1
NUM_BS, NUM_CPE = 2, 16
NUM_PAIRS = NUM_BS * NUM_CPE
DEFAULT_K = 10          # Section V-C1
DEFAULT_SIGMA_ATT = 0.1  # Section V-C2


def checkpoint_dir(name=None) -> Path:
    """A shipped set's folder by its name ("" / None / "bdz", "nulled"), or the
    folder ``name`` itself."""
    name = "" if name is None else str(name)
    return SHIPPED.get(name, Path(name))


def trained_on(directory=None) -> str | None:
    """The dataset folder name the detector in ``directory`` (see
    :func:`checkpoint_dir`) records it was trained on, or None."""
    path = checkpoint_dir(directory) / "detector.pt"
    if not path.exists():
        return None
    return load_checkpoint(path, kind="fwa_detector", version=VERSION).extra.get("dataset")


def pair_index(bs: int, cpe: int, n_cpe: int = NUM_CPE) -> int:
    """e = N (m - 1) + n with 0-based m, n."""
    return int(bs) * n_cpe + int(cpe)


class Detector(nn.Module):
    """I-UDetNet (at the BSs) and C-UDetNet (at the centre), trained jointly."""

    def __init__(self, n_embed: int = 32, width: int = 8, input: str = "paper"):
        super().__init__()
        self.encoder = IUDetNet(n_embed, width, input=input)
        self.centre = CUDetNet(n_embed)


MODEL_CLASSES = {"fwa_detector": Detector, "fwa_ulocnet": IULocNet, "fwa_culocnet": CULocNet,
                 "fwa_pair_sl": PairSupervisedNet, "fwa_soft_fusion": SoftFusionNet}


def save_model(path, kind: str, net: nn.Module, config: dict, extra: dict | None = None) -> Path:
    return save_checkpoint(path, kind=kind, version=VERSION, config=config,
                           state_dict=net.state_dict(), extra=extra or {})


def load_model(path, kind: str, device="cpu"):
    """(network in eval mode, its checkpoint) from a file written by
    :func:`save_model`; CheckpointError names the file when it is unusable."""
    ck = load_checkpoint(path, kind=kind, version=VERSION, map_location=device)
    net = load_state(MODEL_CLASSES[kind](**ck.config), ck).to(device).eval()
    return net, ck


@torch.no_grad()
def encode(det: Detector, x) -> torch.Tensor:
    """Round 1 at a BS: x [..., 64, 4, 64] -> embeddings h [..., N_e]."""
    return det.encoder(torch.as_tensor(np.asarray(x, np.float32)))


@torch.no_grad()
def detect(det: Detector, h, mask=None):
    """At the centre: h [B, P, N_e] (mask [B, P]) -> (probability [B],
    attention [B, P]) as numpy."""
    h = torch.as_tensor(h, dtype=torch.float32)
    m = None if mask is None else torch.from_numpy(np.array(mask, dtype=bool))  # a copy: masks may be read-only broadcasts
    logit, a = det.centre(h, m)
    return torch.sigmoid(logit).numpy(), a.numpy()


@torch.no_grad()
def locate(loc: IULocNet, x):
    """Round 2 at a BS: x [..., 64, 4, 64] -> (p [..., 3] m, v [..., N_v])."""
    p, v = loc(torch.as_tensor(np.asarray(x, np.float32)))
    return p.numpy(), v.numpy()


@torch.no_grad()
def fuse(cloc: CULocNet, p, v, e, mask=None) -> np.ndarray:
    """At the centre: (p [B, L, 3], v [B, L, N_v], e [B, L]) -> p^ [B, 3] m."""
    m = None if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    out = cloc(torch.as_tensor(p, dtype=torch.float32), torch.as_tensor(v, dtype=torch.float32),
               torch.as_tensor(e, dtype=torch.long), m)
    return out.numpy()


@dataclass
class Models:
    """The deployed networks and the centre's decision settings."""

    detector: Detector
    ulocnet: IULocNet
    culocnet: CULocNet
    threshold: float = 0.5
    info: dict = field(default_factory=dict)
    input: str = "paper"
    background: BackgroundModel | None = None
    nuller: object | None = None  # nulled.NulledInput under input "nulled"
    threshold_missing: np.ndarray | None = None  # [M]: with BS m silent (chosen on validation)

    def threshold_for(self, answered) -> float:
        """The decision threshold for the BSs in ``answered``: the one chosen
        on validation with every BS, or with the silent BS left out (fewer
        pairs lower the presence probability of a UAV scene). Several BSs
        silent (not chosen on validation): the lowest of their thresholds."""
        tm = self.threshold_missing
        missing = [] if tm is None else [b for b in range(len(tm)) if b not in set(answered)]
        return float(self.threshold) if not missing else float(np.min(np.asarray(tm)[missing]))

    def inputs(self, H: np.ndarray, pairs) -> np.ndarray:
        """Network inputs of CFRs H [L, 64, 4, n_c] of pairs ``pairs`` [L]."""
        if self.input == "bdz":
            return self.background.normalize(beam_delay_map(H), pairs)
        if self.input == "nulled":
            return self.nuller(H, pairs)
        return preprocess(H)

    @classmethod
    def load(cls, directory=None, device="cpu", nuller=None, inputs: bool = True) -> "Models":
        """``directory``: see :func:`checkpoint_dir`. ``nuller``: a
        function of the models' training dataset (its folder name, as
        recorded, or None) that returns the :class:`.nulled.NulledInput` of
        the subspace calibration the models were trained on, called (and its
        result checked) only when their input is "nulled" and ``inputs``
        (the fusion centre, which makes no inputs, passes ``inputs=False``):
        a caller need not know the input, nor load a calibration for
        models that take none."""
        d = checkpoint_dir(directory)
        det, ck = load_model(d / "detector.pt", "fwa_detector", device)
        loc, _ = load_model(d / "ulocnet.pt", "fwa_ulocnet", device)
        cloc, _ = load_model(d / "culocnet.pt", "fwa_culocnet", device)
        inp = ck.config.get("input", "paper")
        if loc.input != inp or cloc.n_feature != loc.n_feature:
            raise CheckpointError(f"{d}: the detector, I-ULocNet and C-ULocNet do not fit together "
                                  f"(inputs {inp} / {loc.input}, N_v {loc.n_feature} / {cloc.n_feature})")
        if inp == "nulled" and inputs:
            want = ck.extra.get("calibration_digest")
            if nuller is None:
                raise CheckpointError(f"{d}: the models take background-nulled input and need the subspace "
                                      "calibration they were trained with")
            nuller = nuller(ck.extra.get("dataset"))
            if nuller.digest != want:
                raise CheckpointError(f"{d}: the models were trained on subspace calibration {want}, the one "
                                      f"given is {nuller.digest}")
        bg = BackgroundModel.from_tensors(ck.extra) if inp == "bdz" else None
        info = {k: v for k, v in ck.extra.items() if not k.startswith("bg_")}
        tm = ck.extra.get("threshold_missing")
        return cls(det, loc, cloc, float(ck.extra.get("threshold", 0.5)), info, inp, bg,
                   nuller if inp == "nulled" else None, None if tm is None else np.asarray(tm, np.float64))


class BsEncoder:
    """One BS: preprocesses its pairs' CSI and answers the two rounds."""

    def __init__(self, models: Models, bs_index: int):
        self.models = models
        self.bs_index = int(bs_index)
        self._x: dict[int, np.ndarray] = {}

    def round1(self, csi: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """csi: pair index -> H [64, 4, n_c] -> pair index -> embedding."""
        if not csi:
            return {}
        keys = sorted(csi)
        x = self.models.inputs(np.stack([csi[k] for k in keys]), keys)
        self._x = dict(zip(keys, x))
        h = encode(self.models.detector, x).numpy()
        return dict(zip(keys, h))

    def round2(self, selected) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Selected pair indices (those of this BS that it measured) ->
        pair index -> (coarse position [3] m, feature [N_v])."""
        keys = [int(k) for k in selected if int(k) in self._x]
        if not keys:
            return {}
        p, v = locate(self.models.ulocnet, np.stack([self._x[k] for k in keys]))
        return {k: (p[i], v[i]) for i, k in enumerate(keys)}


@dataclass
class Decision:
    probability: float
    present: bool
    attention: dict[int, float]
    selected: list[int]


class FusionCentre:
    """The centre's side of both rounds."""

    second_round = True  # a declared UAV is located from the selected pairs' round-2 answers

    def __init__(self, models: Models, k: int = DEFAULT_K, sigma_att: float = DEFAULT_SIGMA_ATT,
                 threshold: float | None = None):
        self.models = models
        self.k, self.sigma_att = int(k), float(sigma_att)
        self.threshold = models.threshold if threshold is None else float(threshold)
        # None: the validation thresholds per set of BSs that answered; a number holds for any set
        self.per_answered = threshold is None

    def threshold_for(self, pairs) -> float:
        """The threshold of a decision on the pairs ``pairs`` that arrived."""
        if not self.per_answered:
            return self.threshold
        return self.models.threshold_for({int(p) // NUM_CPE for p in pairs})

    @property
    def embedding_size(self) -> int:
        """N_e: the length of a round-1 embedding the detector reads."""
        return int(self.models.detector.centre.classifier[0].in_features)

    @property
    def feature_size(self) -> int:
        """N_v: the length of a round-2 feature C-ULocNet reads."""
        return int(self.models.culocnet.n_feature)

    def detect(self, embeddings: dict[int, np.ndarray]) -> Decision:
        if not embeddings:
            raise ValueError("no pair embeddings to decide on")
        keys = sorted(embeddings)
        h = np.stack([np.asarray(embeddings[k], np.float32) for k in keys])[None]
        prob, a = detect(self.models.detector, h)
        prob, a = float(prob[0]), a[0]
        present = prob >= self.threshold_for(keys)
        selected = [int(i) for i in select_pairs(a, self.k, self.sigma_att, keys)] if present else []
        return Decision(prob, bool(present), dict(zip(keys, a.tolist())), selected)

    def localize(self, answers: dict[int, tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
        """pair index -> (p, v) of the pairs that answered -> p^ [3] m, or
        None when nothing answered."""
        if not answers:
            return None
        keys = sorted(answers)
        p = np.stack([answers[k][0] for k in keys])[None]
        v = np.stack([answers[k][1] for k in keys])[None]
        return fuse(self.models.culocnet, p, v, np.asarray(keys)[None])[0]
