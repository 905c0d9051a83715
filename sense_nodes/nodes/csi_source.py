"""`csi_source`: ray-traced CSI datasets published as `CsiBundle` messages,
one dataset sample per frame, with the sample's truth; or a bag replayed.

Publishes (in its namespace):
  csi    sense_nodes/CsiBundle, reliable (a bundle is a whole sample; a lost
         fragment of a large best-effort message would drop the sample)
  truth  sense_nodes/GroundTruthArray, reliable
"""
from __future__ import annotations

import array

import numpy as np
from geometry_msgs.msg import Point, Vector3

from sense_nodes.msg import CsiBundle, CsiFrame, GroundTruth, GroundTruthArray
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, Param, ParameterError, run_node
from sense_nodes.nodes.source import SourceNode

EPOCH_NS = 1_750_000_000 * 10**9  # sim time of sample 0 (same epoch as the radar simulator)


class CsiSource(SourceNode):
    DEFAULT_NAME = "csi_source"
    OUTPUTS = {
        "csi": ("sense_nodes/msg/CsiBundle", RESULT_QOS),
        "truth": ("sense_nodes/msg/GroundTruthArray", RESULT_QOS),
    }
    PARAMS = (
        Param("dataset", "", "dataset folder ('' = the cached default of 'kind', 'tiny' and 'seed')"),
        Param("kind", "diffloc", "dataset kind for the default folder", choices=("diffloc", "fwa", "imaging")),
        Param("tiny", False, "use the tiny default dataset"),
        Param("seed", 0, "seed of the default dataset", range=(0, 2**31 - 1)),
        Param("split", "", "publish only this split ('' = every sample)", choices=("", "train", "val", "test")),
        Param("period_s", 1.0, "simulation time between samples, s", range=(0.001, 3600.0)),
        Param("frame_id", "map", "frame of positions in the truth (REP-103)"),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.dataset = None if self.p.bag else self._open_dataset()

    def frame_period_s(self) -> float:
        return self.p.period_s

    def _open_dataset(self):
        from sense_nodes.data.csi.dataset import DatasetError, default_dir, load_dataset

        path = self.p.dataset or str(default_dir(self.p.kind, self.p.tiny, self.p.seed))
        try:
            ds = load_dataset(path)
        except DatasetError as exc:
            hint = "" if self.p.dataset else (
                f" (make it with: sense data generate --kind {self.p.kind}{' --tiny' if self.p.tiny else ''}"
                f" --seed {self.p.seed})")
            raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'dataset': {exc}{hint}") from None
        self.indices = list(ds.split_indices(self.p.split) if self.p.split else range(ds.num_samples))
        self.get_logger().info(f"publishing {len(self.indices)} samples of {path} every {self.p.period_s} s")
        return ds

    def live_frame(self, k: int):
        if k >= len(self.indices):
            return None
        sample = self.dataset.sample(int(self.indices[k]))
        stamp_ns = EPOCH_NS + int(round(k * self.p.period_s * 1e9))
        hdr = convert.header(stamp_ns, self.p.frame_id)
        bundle = CsiBundle(header=hdr, sample_index=int(sample.index),
                           frames=[csi_frame(link, hdr) for link in sample.links])
        return stamp_ns, {"csi": bundle, "truth": truth_array(sample.truth.get("objects", []), hdr)}


def csi_frame(link, hdr) -> CsiFrame:
    from sense_nodes.data.csi.dataset import frame_fields

    f = frame_fields(link, values=False)
    msg = CsiFrame(header=hdr, tx_id=f["tx_id"], rx_id=f["rx_id"], link_index=f["link_index"],
                   num_rx_antennas=f["num_rx_antennas"], num_tx_antennas=f["num_tx_antennas"],
                   num_subcarriers=f["num_subcarriers"], carrier_frequency=f["carrier_frequency"],
                   subcarrier_spacing=f["subcarrier_spacing"], snr_db=finite_snr_db(f["snr_db"]))
    H = np.asarray(link.H, dtype=np.complex64)
    msg.real, msg.imag = float32_array(H.real), float32_array(H.imag)  # row-major, subcarrier fastest
    return msg


def float32_array(values: np.ndarray) -> array.array:
    """A float32[] field's value, ``values`` flattened row-major: an
    ``array.array('f')`` (the message takes it without per-element checks)
    made at its size and filled in place, one copy from any numpy layout
    (a strided real or imaginary part too)."""
    out = array.array("f", bytes(4 * values.size))
    np.copyto(np.frombuffer(out, np.float32).reshape(values.shape), values, casting="same_kind")
    return out


# A message never carries an infinity: CSI without receiver noise (infinite
# SNR) reads SNR_CEIL_DB, a link without signal SNR_FLOOR_DB.
SNR_FLOOR_DB, SNR_CEIL_DB = -100.0, 200.0


def finite_snr_db(snr_db: float) -> float:
    if snr_db != snr_db:  # NaN: unknown
        return SNR_FLOOR_DB
    return float(min(max(snr_db, SNR_FLOOR_DB), SNR_CEIL_DB))


def truth_array(objects, hdr) -> GroundTruthArray:
    return GroundTruthArray(header=hdr, objects=[
        GroundTruth(id=int(o["id"]), object_class=int(o["object_class"]),
                    position=Point(x=float(o["position"][0]), y=float(o["position"][1]), z=float(o["position"][2])),
                    velocity=Vector3(x=float(o["velocity"][0]), y=float(o["velocity"][1]), z=float(o["velocity"][2])),
                    visible=bool(o.get("visible", True)))
        for o in objects])


NODE_CLASS = CsiSource


def main(args=None) -> int:
    return run_node(CsiSource, args)
