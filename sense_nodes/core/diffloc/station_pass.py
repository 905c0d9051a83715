"""One sampling pass over the stations (Eq. 18-19): which rows each station
measured, and its network run on those rows only.

Fusion evaluates every station's network at every sampler step; a station
that did not measure a row must not see it (its output there is masked out
by the fusion anyway, and running it would cost time). What does not change
between the steps of a pass (the rows, the features on them, for stacked
UNets the padded [S, n, d] conditioning and the gather / scatter indices)
is built once, so a step costs the networks and a handful of tensor
operations: for a single request the operations, not the arithmetic, are
most of the latency.

Notation: B stations of the model, S of them measured something in this
pass, N rows (requests x draws), n the most rows any station measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sense_nodes.core.diffloc.stacked import StackedUNet


@dataclass
class StationPass:
    rows: list                            # [B]: None (no row), slice (all rows) or an index tensor
    feats: list                           # [B]: features on those rows [n_b, d_b] (None: no row)
    used: list | None = None              # the S stations with rows (stacked UNets only)
    stack: StackedUNet | None = None      # the stack restricted to ``used``
    cond: torch.Tensor | None = None      # [S, n, d_pad] features, zero-padded
    n_max: int = 0                        # n
    gather: torch.Tensor | None = None    # [S * n] rows of x in stack order (N: a zero row)
    scatter: tuple | None = None          # (station, row, slot) of every measured row
    full: bool = False                    # every used station measured every row (no gather / scatter)

    @classmethod
    def build(cls, feats: list, mask: torch.Tensor, stack: StackedUNet | None) -> "StationPass":
        """``feats`` [B] of [N, d_b], ``mask`` [B, N] bool; ``stack``: the
        model's stations as one batched network, or None."""
        rows, fr = [], []
        for f, m in zip(feats, mask):
            if not bool(m.any()):
                rows.append(None)
                fr.append(None)
            elif bool(m.all()):
                rows.append(slice(None))
                fr.append(f)
            else:
                r = torch.nonzero(m).squeeze(1)
                rows.append(r)
                fr.append(f[r])
        used = [b for b, r in enumerate(rows) if r is not None]
        if stack is None or not used:
            return cls(rows, fr)
        dev = mask.device
        if all(isinstance(rows[b], slice) for b in used):
            # the common request, every station heard the UE: the rows go to
            # every station as they are, so there is nothing to gather or scatter
            return cls(rows, fr, used, stack.select(used), stack.conditioning([fr[b] for b in used]), mask.shape[1],
                       full=True)
        n, n_max = mask.shape[1], max(len(fr[b]) for b in used)
        cond = torch.zeros((len(used), n_max, stack.cond_pad), device=dev)
        gather = torch.full((len(used), n_max), n, dtype=torch.long, device=dev)
        sb, sr, slot = [], [], []
        for k, b in enumerate(used):
            cond[k, :len(fr[b]), :fr[b].shape[1]] = fr[b]
            r = torch.arange(n, device=dev) if isinstance(rows[b], slice) else rows[b]
            gather[k, :len(r)] = r
            sb.append(torch.full_like(r, b))
            sr.append(r)
            slot.append(k * n_max + torch.arange(len(r), device=dev))
        return cls(rows, fr, used, stack.select(used), cond, n_max, gather.reshape(-1),
                   (torch.cat(sb), torch.cat(sr), torch.cat(slot)))

    def run(self, fn, x: torch.Tensor, nets, num_bs: int) -> torch.Tensor:
        """[B, N, 2] outputs of ``fn(net_b, feats_b, x_b)`` on each station's
        rows (all stations in one batched call when stacked); zeros elsewhere."""
        if self.full:
            Y = fn(self.stack, self.cond, x.expand(len(self.used), -1, -1))
            if len(self.used) == num_bs:
                return Y
            out = x.new_zeros((num_bs,) + tuple(x.shape))
            out[self.used] = Y
            return out
        out = torch.zeros((num_bs,) + tuple(x.shape), dtype=x.dtype, device=x.device)
        if self.stack is not None:  # one gather in, one scatter out
            X = torch.cat([x, x.new_zeros((1, x.shape[1]))])[self.gather].view(len(self.used), self.n_max, -1)
            Y = fn(self.stack, self.cond, X)
            sb, sr, slot = self.scatter
            out[sb, sr] = Y.reshape(-1, x.shape[1])[slot]
            return out
        for b, (net, f, r) in enumerate(zip(nets, self.feats, self.rows)):
            if r is not None:
                out[b, r] = fn(net, f, x[r])
        return out
