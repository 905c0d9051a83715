"""`fwa_bs_encoder`: one base station's half of cooperative UAV sensing
(fwa_cooperative_sensing, Fig. 3 and Fig. 5). Run one per BS, each in its
own namespace.

Subscribes  csi_topic (sense_nodes/CsiBundle): the frames whose rx_id is
            "bs<bs_index>" are this BS's pairs (tx_id "cpe<n>")
            selection_topic (sense_nodes/UavDetection): the centre's pair
            selection (selected_pairs) for an instant (header stamp)
Publishes   features (sense_nodes/PairFeatureArray), round 1: the I-UDetNet
            embedding of every pair it measured (``detector: learned``), or
            its residual_peak and bistatic_range_m (``detector: subspace``:
            background nulling, core/fwa/calibration.py; no round 2)
            estimates (sense_nodes/PairFeatureArray), round 2: for its
            selected pairs, I-ULocNet's coarse position and its N_v feature
            (in ``embedding``), stamped like the instant
"""
from __future__ import annotations

import collections

import numpy as np
from geometry_msgs.msg import Point

from sense_nodes.msg import CsiBundle, PairFeature, PairFeatureArray, UavDetection
from sense_nodes.nodes.convert import csi_matrix
from sense_nodes.nodes.base import (MalformedMessage, ParameterError, RESULT_QOS, Param, SenseNode, run_node,
                                    stamped_like)

N_RX, N_TX = 64, 4
DETECTORS = ("learned", "subspace")
CALIBRATION_HELP = ("calibration file from `sense train fwa --subspace` for 'detector: subspace' or models on "
                    "background-nulled input "
                    "('' = the cache's one for the models' training dataset, models/fwa/subspace*.npz)")


def load_calibration(node, bs=None, dataset=None):
    """The subspace calibration named by ``node``'s 'calibration' parameter,
    else the cache's for ``dataset`` (bases of BSs ``bs`` only); refused
    naming the command that makes one."""
    from sense_nodes.core.fwa.calibration import SubspaceCalibration, default_path
    return node.load_model(lambda: SubspaceCalibration.load(node.p.calibration or default_path(dataset), bs=bs),
                           param="calibration")


def load_models(node, bs=None, inputs: bool = True):
    """The learned models named by ``node``'s 'checkpoints' parameter; for
    models on background-nulled input (and ``inputs``) with the
    'calibration' they were trained with (bases of BSs ``bs`` only)."""
    from sense_nodes.core.fwa.nulled import NulledInput
    from sense_nodes.core.fwa.pipeline import Models
    return node.load_model(lambda: Models.load(node.p.checkpoints or None, inputs=inputs,
                                               nuller=lambda ds: NulledInput(load_calibration(node, bs, ds))),
                           param="checkpoints")


def stamp_key(header) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def frame_csi(f, n_cpe: int) -> tuple[int, np.ndarray]:
    """(CPE index, H [64, 4, n_c]) of one CsiFrame; MalformedMessage when
    it does not fit."""
    try:
        cpe = int(f.tx_id.removeprefix("cpe"))
    except ValueError:
        raise MalformedMessage(f"link {f.tx_id}->{f.rx_id}: transmitter is not a CPE 'cpe<n>'") from None
    if not 0 <= cpe < n_cpe:
        raise MalformedMessage(f"link {f.tx_id}->{f.rx_id}: CPE index {cpe} outside 0..{n_cpe - 1}")
    if (f.num_rx_antennas, f.num_tx_antennas) != (N_RX, N_TX) or f.num_subcarriers < 64:
        raise MalformedMessage(f"link {f.tx_id}->{f.rx_id}: {f.num_rx_antennas}x{f.num_tx_antennas}x"
                               f"{f.num_subcarriers} CSI, expected {N_RX}x{N_TX}x(>= 64)")
    return cpe, csi_matrix(f)


class FwaBsEncoder(SenseNode):
    DEFAULT_NAME = "fwa_bs_encoder"
    PARAMS = (
        Param("bs_index", 0, "this BS (its frames have rx_id 'bs<bs_index>')", range=(0, 63)),
        Param("num_cpe", 16, "CPEs per BS (pair index = bs_index * num_cpe + cpe)", range=(1, 1024)),
        Param("detector", "learned", "learned: the paper's networks (two rounds); subspace: background "
              "nulling and bistatic ranging (one round, needs 'calibration')", choices=DETECTORS),
        Param("checkpoints", "", "model folder from `sense train fwa` ('' = the shipped models; 'nulled' = the "
              "shipped models on background-nulled input, which need 'calibration')"),
        Param("calibration", "", CALIBRATION_HELP),
        Param("csi_topic", "/fwa/csi", "CSI bundles of all links"),
        Param("selection_topic", "/fwa/selection", "the centre's pair selections"),
        Param("keep_frames", 8, "instants whose preprocessed CSI is kept for round 2", range=(1, 1000), runtime=True),
        Param("cpu_threads", 1, "torch CPU threads (0 = torch's default)", range=(0, 256)),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.rx_id = f"bs{self.p.bs_index}"
        self.encoders: collections.OrderedDict = collections.OrderedDict()
        self.calibration = None
        if self.p.detector == "subspace":
            self.calibration = load_calibration(self, bs=self.p.bs_index)  # its own pairs' bases only
            if self.p.num_cpe != self.calibration.n_cpe:
                raise ParameterError(f"{self.get_fully_qualified_name()}: 'num_cpe' {self.p.num_cpe} does not fit "
                                     f"the calibrated site's {self.calibration.n_cpe} CPEs")
        else:
            from sense_nodes.core.fwa.pipeline import BsEncoder
            models = load_models(self, bs=self.p.bs_index)
            self._make = lambda: BsEncoder(models, self.p.bs_index)
            self.get_logger().info(f"BS {self.rx_id}: the paper's networks on {models.input} input"
                                   + (" (background nulled with its calibration)" if models.input == "nulled" else ""))
        self.features = self.create_publisher(PairFeatureArray, "features", RESULT_QOS)
        self.estimates = self.create_publisher(PairFeatureArray, "estimates", RESULT_QOS)
        self.subscribe(CsiBundle, self.p.csi_topic, self.on_csi, RESULT_QOS, kind="csi")
        self.subscribe(UavDetection, self.p.selection_topic, self.on_selection, RESULT_QOS, kind="selection")
        self.get_logger().info(f"BS {self.rx_id}: encoding its pairs of {self.p.csi_topic}, answering "
                               f"selections on {self.p.selection_topic}")

    def pair(self, cpe: int) -> int:
        return int(self.p.bs_index) * int(self.p.num_cpe) + cpe

    def on_csi(self, msg: CsiBundle) -> None:
        csi = {}
        for f in msg.frames:
            if f.rx_id == self.rx_id:
                cpe, h = frame_csi(f, int(self.p.num_cpe))
                csi[self.pair(cpe)] = h
        if not csi:
            return  # no pair of this BS in the bundle
        if self.calibration is not None:
            self.publish(self.features, self.echo_reports(msg, csi))
            return
        enc = self._make()
        h = enc.round1(csi)
        key = stamp_key(msg.header)
        self.encoders[key] = enc
        while len(self.encoders) > self.p.keep_frames:
            self.encoders.popitem(last=False)
        out = PairFeatureArray(header=stamped_like(msg.header), bs_id=self.rx_id)
        n = int(self.p.num_cpe)
        out.pairs = [PairFeature(pair_index=k, bs_index=k // n, cpe_index=k % n,
                                 embedding=np.asarray(v, np.float32).tolist()) for k, v in h.items()]
        self.publish(self.features, out)

    def echo_reports(self, msg: CsiBundle, csi: dict) -> PairFeatureArray:
        """The one round of 'detector: subspace': per pair, the background-
        nulled residual's peak and the bistatic range of its delay."""
        from sense_nodes.core.fwa.calibration import pair_echoes
        try:
            echoes = pair_echoes(self.calibration, csi)
        except ValueError as exc:
            raise MalformedMessage(f"{self.rx_id}: {exc}") from None
        out = PairFeatureArray(header=stamped_like(msg.header), bs_id=self.rx_id)
        n = int(self.p.num_cpe)
        out.pairs = [PairFeature(pair_index=k, bs_index=k // n, cpe_index=k % n, residual_peak=z, bistatic_range_m=r)
                     for k, (z, r) in echoes.items()]
        return out

    def on_selection(self, msg: UavDetection) -> None:
        enc = self.encoders.get(stamp_key(msg.header))
        if enc is None:
            return  # an instant this BS did not measure (or forgot)
        mine = [int(k) for k in msg.selected_pairs if int(k) // int(self.p.num_cpe) == self.p.bs_index]
        answers = enc.round2(mine)
        out = PairFeatureArray(header=stamped_like(msg.header), bs_id=self.rx_id)
        n = int(self.p.num_cpe)
        for k, (p, v) in answers.items():
            if not (np.isfinite(p).all() and np.isfinite(v).all()):
                self.drop("estimate", "a non-finite estimate was not sent")
                continue
            out.pairs.append(PairFeature(pair_index=k, bs_index=k // n, cpe_index=k % n,
                                         embedding=np.asarray(v, np.float32).tolist(),
                                         coarse_position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                                         coarse_confidence=1.0))
        self.publish(self.estimates, out)

    def diagnostic_values(self):
        return {"bs": self.rx_id, "detector": self.p.detector, "frames_kept": len(self.encoders)}


NODE_CLASS = FwaBsEncoder


def main(args=None) -> int:
    return run_node(FwaBsEncoder, args)
