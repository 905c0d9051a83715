"""Where trained DiffLoc models live: ``$SENSE_CACHE/models/diffloc/``,
one checkpoint per model kind and split scheme (``ct.pt``,
``ct-user.pt``, ``unet-snr20.pt``, ``ct-beamdb-frac25.pt``, ...); ``sense train diffloc`` writes
there by default, the node and ``sense eval diffloc`` read from there."""
from __future__ import annotations

from pathlib import Path


def model_dir() -> Path:
    from sense_nodes.data.paths import cache_dir
    return cache_dir("models", "diffloc")


def model_name(model: str, scheme: str = "random", tag: str = "") -> str:
    name = model + ("" if scheme == "random" else f"-{scheme}")
    return name + (f"-{tag}" if tag else "") + ".pt"


def fraction_tag(fraction: float) -> str:
    """``frac25`` for a model trained on a quarter of the training split."""
    return f"frac{100 * fraction:g}".replace(".", "p")


def default_path(model: str, scheme: str = "random", tag: str = "") -> Path:
    return model_dir() / model_name(model, scheme, tag)
