"""`isac_scene_source`: multi-static CSI of simulated airspace scenes from the
imaging paper's physics model (cooperating BSs, cascaded channel of Eq. 7 /
10-11, Gaussian RCS, -110 dBm noise), one scene per frame, as `CsiBundle`
messages (one frame per BS pair) with the scene's truth; or a bag replayed.

Publishes (in its namespace):
  csi    sense_nodes/CsiBundle, reliable; frame tx_id/rx_id "bs<i>", H[rx, tx, k]
  truth  sense_nodes/GroundTruthArray, reliable
  truth_markers  visualization_msgs/MarkerArray, reliable (RViz)
"""
from __future__ import annotations

import numpy as np

from sense_nodes.msg import CsiBundle
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, Param, run_node
from sense_nodes.nodes.csi_source import EPOCH_NS, csi_frame, truth_array
from sense_nodes.nodes.source import SourceNode


class IsacSceneSource(SourceNode):
    DEFAULT_NAME = "isac_scene_source"
    OUTPUTS = {
        "csi": ("sense_nodes/msg/CsiBundle", RESULT_QOS),
        "truth": ("sense_nodes/msg/GroundTruthArray", RESULT_QOS),
        "truth_markers": ("visualization_msgs/msg/MarkerArray", RESULT_QOS),
    }
    TRUTH_MARKER_M = 3.0  # one voxel
    PARAMS = (
        Param("seed", 0, "scene seed", range=(0, 2**31 - 1)),
        Param("scenes", 100, "scenes to publish", range=(1, 10_000_000)),
        Param("off_grid", True, "UAVs anywhere in their voxel (False: at voxel centres)"),
        Param("period_s", 0.5, "simulation time between scenes, s", range=(0.001, 3600.0)),
        Param("frame_id", "map", "frame of the positions (REP-103)"),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        from sense_nodes.core.imaging.geometry import ImagingConfig, measurement_pairs
        super().__init__(node_name, **kwargs)
        self.cfg = ImagingConfig()  # the paper's off-grid 2D setting (Sec. V-C), as the shipped imagers
        self.pairs = measurement_pairs(self.cfg)
        self.rng = np.random.default_rng(self.p.seed)

    def frame_period_s(self) -> float:
        return self.p.period_s

    def live_frame(self, k: int):
        from sense_nodes.core.imaging.targets import link_snr_db, measure, sample_scene
        from sense_nodes.data.csi.dataset import LinkCsi, truth_object

        if k >= self.p.scenes:
            return None
        cfg = self.cfg
        scene = sample_scene(cfg, self.rng, off_grid=self.p.off_grid)
        y = measure(cfg, [scene], self.rng)[0]
        blocks = y.reshape(len(self.pairs), cfg.n_subcarriers, cfg.n_antennas, cfg.n_antennas)  # [k, tx, rx]
        echo = measure(cfg, [scene], None, noise=False)[0].reshape(len(self.pairs), -1)
        snr_db = link_snr_db(echo, cfg.noise_var)  # csi_frame bounds it for the message
        stamp_ns = EPOCH_NS + int(round(k * self.p.period_s * 1e9))
        hdr = convert.header(stamp_ns, self.p.frame_id)
        frames = [csi_frame(LinkCsi(f"bs{b1}", f"bs{b2}", i, block.transpose(2, 1, 0), cfg.f0_hz,
                                    cfg.bandwidth_hz / max(cfg.n_subcarriers, 1), float(snr_db[i])), hdr)
                  for i, ((b1, b2), block) in enumerate(zip(self.pairs, blocks))]
        truth = [truth_object(i, 1, p) for i, p in enumerate(scene.positions)]
        return stamp_ns, {"csi": CsiBundle(header=hdr, sample_index=k, frames=frames),
                          "truth": truth_array(truth, hdr)}


NODE_CLASS = IsacSceneSource


def main(args=None) -> int:
    return run_node(IsacSceneSource, args)
