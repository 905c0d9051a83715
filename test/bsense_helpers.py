"""Stand-ins shared by the BSense evaluation tests."""
from __future__ import annotations

import numpy as np


class ConstantClassifier:
    """A TrajFormer stand-in that calls every window true with the same probability."""

    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, windows):
        return np.full(len(windows), self.p)
