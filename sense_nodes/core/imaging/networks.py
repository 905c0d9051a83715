"""The DNNs of Sec. IV-B and Tables III-IV.

- ``ImagingCNN``: the physics-embedded imager, six blocks with channels
  [64, 128, 128, 128, 64, 32] (Sec. V-C), 2D or 3D kernels, with residual
  connections ("resCNN", Fig. 6(b)) or without ("CNN"), optionally trained to
  predict the noise sigma_pri - sigma ("Dn-", Table IV).
- ``RawYNet``: the black-box DNN<y> of Table III, fed the raw CSI y.

Fig. 6(b) is not in the text; the paper lists one channel count per block, so
each residual block is one 3x3 (3x3x3) convolution with batch norm and ReLU
plus a skip path (1x1 convolution where the width changes). This also keeps a
2D frame under 15 ms on a two-core CPU.

The output activation is not in the text either. ``head="sigmoid"`` (the
default) bounds the image to [0, 1] in label units (a mean-RCS UAV is ~1), as
the paper authors' published network does; empty space then sits in the
flat tail of the sigmoid instead of being balanced around zero by a linear
output, which the L1 term of Eq. 22 otherwise drives negative.
"""
from __future__ import annotations

import torch
from torch import nn

PAPER_CHANNELS = (64, 128, 128, 128, 64, 32)
HEADS = ("sigmoid", "linear")


class ConvBlock(nn.Module):
    """conv(k=3) -> BN -> ReLU, plus a skip path when ``residual``."""

    def __init__(self, c_in: int, c_out: int, dims: int, residual: bool):
        super().__init__()
        Conv = nn.Conv3d if dims == 3 else nn.Conv2d
        Norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
        self.conv = Conv(c_in, c_out, 3, padding=1, bias=False)
        self.norm = Norm(c_out)
        self.residual = residual
        self.skip = None
        if residual and c_in != c_out:
            self.skip = Conv(c_in, c_out, 1, bias=False)

    def forward(self, x):
        out = self.norm(self.conv(x))
        if self.residual:
            out = out + (x if self.skip is None else self.skip(x))
        return torch.relu(out)


class ImagingCNN(nn.Module):
    """sigma_pri features (n, C_in, *grid) -> image (n, *grid)."""

    def __init__(self, in_channels: int = 3, channels=PAPER_CHANNELS, dims: int = 2,
                 residual: bool = True, denoise: bool = False, head: str = "sigmoid"):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims={dims} must be 2 or 3")
        if len(channels) < 1:
            raise ValueError("channels must list at least one block width")
        if head not in HEADS:
            raise ValueError(f"head={head!r} must be one of {HEADS}")
        widths = (in_channels,) + tuple(channels)
        self.blocks = nn.Sequential(*[ConvBlock(widths[i], widths[i + 1], dims, residual)
                                      for i in range(len(channels))])
        Conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.head = Conv(widths[-1], 1, 1)
        self.denoise = denoise
        self.sigmoid = head == "sigmoid"

    def forward(self, x):
        out = self.head(self.blocks(x))[:, 0]
        if self.denoise:
            # Dn-CNN: the network estimates sigma_pri - sigma, channel 0 is |sigma_pri|
            out = x[:, 0] - (torch.sigmoid(out) if self.sigmoid else out)
        elif self.sigmoid:
            out = torch.sigmoid(out)
        return out


class RawYNet(nn.Module):
    """DNN<y> (Table III): [Re y, Im y] -> image, a fully connected network of
    about the imager's parameter count (the paper: "comparable number")."""

    def __init__(self, n_measurements: int, grid_shape: tuple, hidden=(64, 256)):
        super().__init__()
        n_out = 1
        for g in grid_shape:
            n_out *= g
        widths = (2 * n_measurements,) + tuple(hidden)
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_out))
        self.mlp = nn.Sequential(*layers)
        self.grid_shape = tuple(grid_shape)

    def forward(self, x):
        return self.mlp(x).reshape((len(x),) + self.grid_shape)


ARCHS = ("rescnn", "cnn", "dn-cnn", "dn-rescnn", "mlp")


def build_network(arch: str, in_channels: int, dims: int, grid_shape: tuple,
                  n_measurements: int = 0, channels=PAPER_CHANNELS,
                  head: str = "sigmoid") -> nn.Module:
    """The network named in Table III/IV: rescnn, cnn, dn-cnn, dn-rescnn, or mlp (DNN<y>)."""
    if arch == "mlp":
        return RawYNet(n_measurements, grid_shape)
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} must be one of {ARCHS}")
    return ImagingCNN(in_channels, channels, dims, residual=arch.endswith("rescnn"),
                      denoise=arch.startswith("dn-"), head=head)
