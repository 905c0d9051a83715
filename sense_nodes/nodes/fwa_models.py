"""What both FWA nodes do first: load the networks their parameters name."""
from __future__ import annotations

from sense_nodes.nodes.base import ParameterError


def load_models(node):
    """The FWA networks for ``node``: torch on ``cpu_threads`` threads, the
    folder ``checkpoints`` names (or the shipped models); a file that cannot
    be used is refused naming the parameter."""
    from sense_nodes.core.checkpoint import CheckpointError
    from sense_nodes.core.fwa.pipeline import Models
    if node.p.cpu_threads:
        import torch
        torch.set_num_threads(int(node.p.cpu_threads))
    try:
        return Models.load(node.p.checkpoints or None)
    except (CheckpointError, FileNotFoundError) as exc:
        raise ParameterError(f"{node.get_fully_qualified_name()}: parameter 'checkpoints': {exc}") from None
