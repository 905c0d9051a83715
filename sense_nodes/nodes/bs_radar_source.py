"""`bs_radar_source`: base-station point clouds, live from the scenario
simulator or replayed from a bag, with the simulator's truth.

Publishes (in its namespace, /bs in the deployments):
  points         sensor_msgs/PointCloud2, sensor-data QoS, one frame / 0.64 s
  truth          sense_nodes/GroundTruthArray, reliable
  truth_markers  visualization_msgs/MarkerArray, reliable (RViz)
"""
from __future__ import annotations

from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS, Param, ParameterError, run_node
from sense_nodes.nodes.source import SourceNode
from sense_nodes.bs_sensor import FRAME_S


class BsRadarSource(SourceNode):
    DEFAULT_NAME = "bs_radar_source"
    OUTPUTS = {
        "points": ("sensor_msgs/msg/PointCloud2", SENSOR_QOS),
        "truth": ("sense_nodes/msg/GroundTruthArray", RESULT_QOS),
        "truth_markers": ("visualization_msgs/msg/MarkerArray", RESULT_QOS),
    }
    PARAMS = (
        Param("scenario", "circle_1_r1", "named scenario of the simulator's library (live mode)"),
        Param("seed", -1, "draw the scenario's targets and ghosts afresh with this seed (-1 = library seed)",
              range=(-1, 2**31 - 1)),
        Param("site_seed", -1, "draw a new site clutter map with this seed (-1 = library site)",
              range=(-1, 2**31 - 1)),
        Param("frame_id", "bs", "frame of the published clouds (the base station, REP-103)"),
    )

    PERIOD_S = FRAME_S  # BSense frame interval (Section 2); the scenario's dt

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        # Live: draw the scenario now, so a bad name is refused at start.
        self.scenario = None if self.p.bag else self._open_scenario()

    def _open_scenario(self):
        from sense_nodes.data.bs_sim import library

        seed = None if self.p.seed < 0 else self.p.seed
        site_seed = None if self.p.site_seed < 0 else self.p.site_seed
        try:
            scenario = library.scenario(self.p.scenario, seed=seed, site_seed=site_seed)
        except KeyError as exc:
            raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'scenario': {exc}") from None
        if abs(scenario.dt - self.PERIOD_S) > 1e-9:
            raise ParameterError(f"scenario '{scenario.name}' has frame interval {scenario.dt} s, "
                                 f"the source publishes every {self.PERIOD_S} s")
        self.get_logger().info(
            f"live scenario '{scenario.name}': {len(scenario)} frames every {scenario.dt:.2f} s "
            f"(seed {scenario.spec.seed}, site seed {scenario.spec.site_seed})")
        return scenario

    def live_frame(self, k: int):
        if k >= len(self.scenario):
            return None
        frame = self.scenario.frame(k)
        hdr = convert.header(frame.stamp_ns, self.p.frame_id)
        truth = convert.ground_truth_array(frame.truth, hdr)
        return frame.stamp_ns, {"points": convert.pointcloud2(frame.points, hdr), "truth": truth}


NODE_CLASS = BsRadarSource


def main(args=None) -> int:
    return run_node(BsRadarSource, args)
