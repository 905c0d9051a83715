"""Track verification by TrajFormer (BSense paper, Section 3.4.2): each
trajectory is evaluated in real time on its most recent W observations
"until it is verified as a true target and then output"."""
from __future__ import annotations

import numpy as np

from .trajformer import window_features


def verify_tracks(tracks, classifier, window: int, threshold: float, origin) -> None:
    """Score every confirmed, associated, not yet verified track that has W
    observations; a track whose P(true) reaches ``threshold`` is verified for
    good. Only confirmed tracks can be output, so the others are not scored
    (our choice: it saves time). Updates ``track.score`` and
    ``track.verified`` in place."""
    todo = [t for t in tracks
            if t.confirmed and t.associated and not t.verified and len(t.history) >= window]
    if not todo:
        return
    obs = np.stack([np.asarray(list(t.history)[-window:]) for t in todo])
    p = classifier.predict_proba(window_features(obs, origin))
    for t, s in zip(todo, p):
        t.score = float(s)
        if s >= threshold:
            t.verified = True
