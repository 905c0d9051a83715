"""The per-BS DiffLoc-UNets run as one batched network at inference.

Fusion evaluates one network per station at every sampler step (Eq. 18-19).
Run one after another, a 3-station 2-step estimate is six small forward
passes whose cost is mostly per-operation overhead, not arithmetic. Here
the stations' weights are stacked once ([S, out, in]) and every layer of
:class:`ScoreUNet` is one batched matrix product over the stations
(``torch.baddbmm``), so a step costs one pass whatever the number of
stations. Same arithmetic as the individual networks (eval mode: dropout
off), to float32 rounding.

The time terms (embedding and its projection at every encoder level)
depend on the time alone; a sampler uses the same few times for every
request, so for a time given as one number they are computed once and kept.

Shapes: ``x`` [S, n, 2], ``t`` [n] or one number (one time for the rows of
every station), ``cond`` [S, n, d] (every station's features padded to the
largest d).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sense_nodes.core.diffloc.networks import ScoreUNet

TIME_CACHE = 512  # kept time terms per station subset (DDIM's 200 steps fit)


def _linear(layers: list[nn.Linear], in_pad: int | None = None):
    """Stacked (weight^T [S, in, out], bias [S, 1, out]); inputs zero-padded to ``in_pad``."""
    ws = []
    for lin in layers:
        w = lin.weight.detach().float().t()
        if in_pad is not None and w.shape[0] < in_pad:
            w = torch.cat([w, w.new_zeros(in_pad - w.shape[0], w.shape[1])])
        ws.append(w)
    return torch.stack(ws).contiguous(), torch.stack([lin.bias.detach().float() for lin in layers])[:, None]


def _norm(layers: list[nn.LayerNorm]):
    return (torch.stack([n.weight.detach().float() for n in layers])[:, None],
            torch.stack([n.bias.detach().float() for n in layers])[:, None], layers[0].eps)


class StackedUNet:
    """S trained ScoreUNets (same widths) evaluated as one."""

    def __init__(self, nets: list[ScoreUNet]):
        if not nets or not all(isinstance(n, ScoreUNet) for n in nets):
            raise TypeError("StackedUNet needs ScoreUNet networks")
        self.freqs = nets[0].temb[0].freqs.float()
        self.cond_dims = [n.inp[0].in_features - 2 for n in nets]
        self.cond_pad = max(self.cond_dims)
        self.temb = _linear([n.temb[1] for n in nets])
        self.inp = _linear([n.inp[0] for n in nets], 2 + self.cond_pad)
        self.enc = [(_linear([n.enc[i][0] for n in nets]), _norm([n.enc[i][1] for n in nets]))
                    for i in range(len(nets[0].enc))]
        self.tproj = [_linear([n.tproj[i] for n in nets]) for i in range(len(nets[0].tproj))]
        self.dec = [(_linear([n.dec[i][0] for n in nets]), _norm([n.dec[i][1] for n in nets]))
                    for i in range(len(nets[0].dec))]
        self.head = _linear([n.head for n in nets])
        self._subsets: dict = {tuple(range(len(nets))): self}
        self._times: dict = {}

    def conditioning(self, feats: list) -> torch.Tensor:
        """[S, n, d_pad]: the stations' features [n, d_s], in stack order,
        zero-padded to the widest station's (the stacked input layer reads
        d_pad values; the padding meets zero weights)."""
        return torch.stack([f if f.shape[1] == self.cond_pad else F.pad(f, (0, self.cond_pad - f.shape[1]))
                            for f in feats])

    def select(self, stations: list[int]) -> "StackedUNet":
        """The same stack restricted to ``stations``, gathered once per
        subset of stations and kept (a request pays no weight copy)."""
        key = tuple(int(b) for b in stations)
        if key not in self._subsets:
            self._subsets[key] = self._gather(list(key))
        return self._subsets[key]

    def _gather(self, stations: list[int]) -> "StackedUNet":
        out = object.__new__(StackedUNet)
        out._subsets, out._times = {}, {}
        idx = torch.as_tensor(stations)
        pick = lambda wb: (wb[0][idx], wb[1][idx])  # noqa: E731
        pickn = lambda g: (g[0][idx], g[1][idx], g[2])  # noqa: E731
        out.freqs, out.cond_pad = self.freqs, self.cond_pad
        out.cond_dims = [self.cond_dims[i] for i in stations]
        out.temb, out.inp, out.head = pick(self.temb), pick(self.inp), pick(self.head)
        out.enc = [(pick(a), pickn(b)) for a, b in self.enc]
        out.tproj = [pick(a) for a in self.tproj]
        out.dec = [(pick(a), pickn(b)) for a, b in self.dec]
        return out

    @staticmethod
    def _lin(h, wb):
        return torch.baddbmm(wb[1], h, wb[0])

    @staticmethod
    def _ln(h, g):
        return torch.addcmul(g[1], F.layer_norm(h, h.shape[-1:], eps=g[2]), g[0])

    def _time_terms(self, t: torch.Tensor) -> list[torch.Tensor]:
        """[embedding, projection at encoder level 1, 2, ...], each [S, n, w]."""
        a = 1000.0 * t.float()[:, None] * self.freqs[None]
        e = torch.cat([torch.sin(a), torch.cos(a)], dim=1).expand(len(self.temb[0]), -1, -1)
        te = F.silu(self._lin(e, self.temb))
        return [te] + [self._lin(te, tp) for tp in self.tproj]

    def time_terms(self, t: torch.Tensor | float) -> list[torch.Tensor]:
        """The time terms; for one number, [S, 1, w] kept per value."""
        if torch.is_tensor(t):
            return self._time_terms(t)
        key = float(t)
        if key not in self._times:
            if len(self._times) >= TIME_CACHE:
                self._times.clear()
            self._times[key] = self._time_terms(torch.tensor([key], device=self.freqs.device))
        return self._times[key]

    def __call__(self, x: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor) -> torch.Tensor:
        te, *tps = self.time_terms(t)
        h = F.silu(self._lin(torch.cat([x, cond], dim=2), self.inp)) + te
        skips = [h]
        for (lin, ln), tp in zip(self.enc, tps):
            h = F.silu(self._ln(self._lin(h, lin), ln)) + tp
            skips.append(h)
        skips.pop()
        for lin, ln in self.dec:
            h = F.silu(self._ln(self._lin(torch.cat([h, skips.pop()], dim=2), lin), ln))
        return self._lin(h, self.head)
