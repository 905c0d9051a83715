"""`fwa_fusion_center`: the fusion centre of cooperative UAV sensing
(fwa_cooperative_sensing, Sections III-C and IV), running the two-round
protocol of :mod:`sense_nodes.core.fwa.protocol`.

Subscribes  <bs>/features (sense_nodes/PairFeatureArray) for each BS
            namespace in ``bs_namespaces`` (round 1: embeddings)
            <bs>/estimates (sense_nodes/PairFeatureArray) (round 2: coarse
            positions and features of the selected pairs)
            truth_topic (sense_nodes/GroundTruthArray), for the markers
Publishes   detection (sense_nodes/UavDetection): one per instant, after
            round 1 when no UAV is declared, after round 2 (with the fused
            position) when one is
            selection (sense_nodes/UavDetection): the pairs selected for
            localization (position_valid false), read by the BS encoders
            markers (visualization_msgs/MarkerArray): BSs, CPEs, each pair's
            line coloured by its attention, the estimate and the truth
A BS that does not report within ``timeout_s`` is left out of that instant.

``detector: subspace`` (core/fwa/calibration.py): round 1 carries each
pair's residual_peak z and bistatic_range_m; the centre declares a UAV
when the largest z reaches the threshold chosen on validation for the BSs
that answered, and locates it from the ``k`` strongest pairs (no round 2).
There presence_probability is z / (z + that threshold) (a monotone display
scale, 0.5 at the threshold, not a calibrated probability), attention is z
normalised over the pairs received, selected_pairs the pairs the position
was fitted on, and 'threshold' applies to that scale (-1 = 0.5).
"""
from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from sense_nodes.msg import GroundTruthArray, PairFeatureArray, UavDetection
from sense_nodes.nodes.base import MalformedMessage, ParameterError, RESULT_QOS, Param, SenseNode, run_node
from sense_nodes.nodes.fwa_bs_encoder import CALIBRATION_HELP, DETECTORS, load_calibration, load_models, stamp_key
from sense_nodes.nodes.markers import truth_markers


class FwaFusionCenter(SenseNode):
    DEFAULT_NAME = "fwa_fusion_center"
    PARAMS = (
        Param("detector", "learned", "learned: the paper's networks (two rounds); subspace: background "
              "nulling and bistatic ranging (one round, needs 'calibration'); as the BS encoders'",
              choices=DETECTORS),
        Param("checkpoints", "", "model folder from `sense train fwa` ('' = the shipped models; 'nulled' = the "
              "shipped models on background-nulled input)"),
        Param("calibration", "", CALIBRATION_HELP),
        Param("bs_namespaces", ["bs0", "bs1"], "namespaces of the BS encoders (relative to this node's), "
              "in BS order"),
        Param("num_cpe", 16, "CPEs per BS", range=(1, 1024)),
        Param("k", 10, "top-k of the pair selection (Eq. 16)", range=(1, 1024), runtime=True),
        Param("sigma_att", 0.1, "attention threshold of the pair selection (Eq. 16)", range=(0.0, 1.0), runtime=True),
        Param("threshold", -1.0, "presence decision threshold on the probability (-1 = the checkpoint's, "
              "chosen on validation data for the BSs that answered; subspace: 0.5, the calibration's)", range=(-1.0, 1.0), runtime=True),
        Param("subspace_k", 0, "subspace: pairs the position is fitted on (0 = the calibration's, chosen "
              "on validation data)", range=(0, 1024)),
        Param("timeout_s", 0.5, "wait this long for the BSs in each round, s", range=(0.001, 60.0), runtime=True),
        Param("truth_topic", "/fwa/truth", "ground truth for the markers ('' = none)"),
        Param("bs_xyz", [-50.0, 0.0, 100.0, 50.0, 0.0, 100.0], "BS positions x, y, z per BS, m (markers)"),
        Param("cpe_xyz", [0.0], "CPE positions x, y, z per CPE, m (markers; [0.0] = not drawn)"),
        Param("frame_id", "map", "frame of positions (REP-103)"),
        Param("cpu_threads", 1, "torch CPU threads (0 = torch's default)", range=(0, 256)),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        from sense_nodes.core.fwa.protocol import CentreProtocol
        self.bs_ids = [f"bs{i}" for i in range(len(self.p.bs_namespaces))]
        self.subspace = self.p.detector == "subspace"
        self._learned_only = {"k": self.p.k, "sigma_att": self.p.sigma_att}   # refused at runtime under subspace
        if self.subspace:
            from sense_nodes.core.fwa.calibration import SubspaceCentre
            cal = load_calibration(self, bs=[])   # geometry and thresholds; the bases stay at the BSs
            if (len(self.bs_ids), self.p.num_cpe) != (cal.n_bs, cal.n_cpe):
                raise ParameterError(f"{self.get_fully_qualified_name()}: {len(self.bs_ids)} BSs x {self.p.num_cpe} "
                                     f"CPEs ('bs_namespaces', 'num_cpe') do not fit the calibrated site "
                                     f"({cal.n_bs} x {cal.n_cpe})")
            self.centre = SubspaceCentre(cal)
        else:
            from sense_nodes.core.fwa.pipeline import FusionCentre
            models = load_models(self, inputs=False)   # the centre makes no network inputs
            self.centre = FusionCentre(models)
        n = int(self.p.num_cpe)
        self.protocol = CentreProtocol(self.centre, self.bs_ids, lambda pair: f"bs{pair // n}", self.p.timeout_s)
        self._apply_params()
        self.headers: dict[int, Header] = {}
        self.truth = None
        self.detection_pub = self.create_publisher(UavDetection, "detection", RESULT_QOS)
        self.selection_pub = self.create_publisher(UavDetection, "selection", RESULT_QOS)
        self.markers = self.create_publisher(MarkerArray, "markers", RESULT_QOS)
        for i, ns in enumerate(self.p.bs_namespaces):
            bs = self.bs_ids[i]
            self.subscribe(PairFeatureArray, f"{ns}/features", lambda m, b=bs: self.on_round(m, b, 1),
                           RESULT_QOS, kind="features")
            self.subscribe(PairFeatureArray, f"{ns}/estimates", lambda m, b=bs: self.on_round(m, b, 2),
                           RESULT_QOS, kind="estimates")
        if self.p.truth_topic:
            self.subscribe(GroundTruthArray, self.p.truth_topic, self.on_truth, RESULT_QOS, kind="truth")
        self.timer = self.create_timer(min(0.05, self.p.timeout_s / 4), self.poll)
        self.counts = {"instants": 0, "uav_declared": 0, "bs_timeouts": 0, "localized": 0}
        how = (f"subspace detector, threshold {self.centre.threshold:.4f} (z >= "
               f"{self.centre.z_threshold(range(len(self.bs_ids))):.4g} with every BS), k {self.centre.k}"
               if self.subspace else
               f"threshold {self.centre.threshold:.4f}, k {self.p.k}, sigma_att {self.p.sigma_att}")
        self.get_logger().info(f"fusion centre: BSs {list(self.p.bs_namespaces)}, {how}, timeout {self.p.timeout_s} s")

    def _apply_params(self):
        self.protocol.timeout_s = float(self.p.timeout_s)
        if self.subspace:
            self.centre.k = int(self.p.subspace_k) or self.centre.cal.k_pairs
            self.centre.threshold = float(self.p.threshold) if self.p.threshold >= 0 else 0.5
            return
        self.centre.k, self.centre.sigma_att = int(self.p.k), float(self.p.sigma_att)
        if self.p.threshold >= 0:
            self.centre.threshold, self.centre.per_answered = float(self.p.threshold), False
        else:
            self.centre.threshold, self.centre.per_answered = self.centre.models.threshold, True

    def on_parameters_changed(self, names):
        unused = [n for n in ("k", "sigma_att") if n in names and getattr(self.p, n) != self._learned_only[n]]
        if self.subspace and unused:  # accepted but ignored would mislead: the subspace detector selects no pairs by attention
            raise ParameterError(f"{unused} apply to 'detector: learned' (this centre runs 'subspace': its pair "
                                 f"count is 'subspace_k')")
        self._apply_params()

    def effective_parameters(self):
        thr = self.centre.threshold if self.p.threshold >= 0 else -1.0
        if self.subspace:
            return dict(super().effective_parameters(), subspace_k=self.centre.k, threshold=thr,
                        timeout_s=self.protocol.timeout_s)
        return dict(super().effective_parameters(), k=self.centre.k, sigma_att=self.centre.sigma_att,
                    threshold=thr, timeout_s=self.protocol.timeout_s)

    # --- inputs ---------------------------------------------------------------
    def on_round(self, msg: PairFeatureArray, bs: str, rnd: int) -> None:
        if self.subspace:
            if rnd == 1:
                self.on_echoes(msg, bs)
            return  # one round: nothing is asked of the BSs
        n = int(self.p.num_cpe)
        mine = self.bs_ids.index(bs)
        size = self.centre.embedding_size if rnd == 1 else self.centre.feature_size
        data = {}
        for f in msg.pairs:
            if len(f.embedding) != size:
                raise MalformedMessage(f"{bs}: pair {f.pair_index} carries {len(f.embedding)} values; round {rnd} "
                                       f"needs {size}")
            if f.pair_index // n != mine or f.bs_index != mine:
                raise MalformedMessage(f"{bs} reported pair {f.pair_index} (BS {f.bs_index}), not one of its own")
            v = np.asarray(f.embedding, np.float32)
            p = np.array([f.coarse_position.x, f.coarse_position.y, f.coarse_position.z], np.float64)
            # checked in float64: a position beyond float32's range would overflow in the cast
            if v.size == 0 or not (np.isfinite(v).all() and np.isfinite(p).all() and np.abs(p).max() < 1e30):
                raise MalformedMessage(f"{bs}: pair {f.pair_index} carries an empty or non-finite vector")
            p = p.astype(np.float32)
            data[int(f.pair_index)] = v if rnd == 1 else (p, v)
        key = stamp_key(msg.header)
        now = time.monotonic()
        if rnd == 1:
            self.headers.setdefault(key, msg.header)
            events = self.protocol.on_round1(key, bs, data, now)
        else:
            events = self.protocol.on_round2(key, bs, data, now)
        self._handle_events(events)

    def on_echoes(self, msg: PairFeatureArray, bs: str) -> None:
        """'detector: subspace': a BS's residual peaks and bistatic ranges."""
        n, mine = int(self.p.num_cpe), self.bs_ids.index(bs)
        data = {}
        for f in msg.pairs:
            if f.pair_index // n != mine or f.bs_index != mine:
                raise MalformedMessage(f"{bs} reported pair {f.pair_index} (BS {f.bs_index}), not one of its own")
            if len(f.embedding):
                raise MalformedMessage(f"{bs}: pair {f.pair_index} carries an embedding: that BS encoder runs "
                                       f"'detector: learned', this centre 'subspace'")
            z, r = float(f.residual_peak), float(f.bistatic_range_m)
            if not (np.isfinite(z) and np.isfinite(r) and z >= 0 and r >= 0):
                raise MalformedMessage(f"{bs}: pair {f.pair_index} carries residual_peak {z}, bistatic_range_m {r} "
                                       f"(need finite values >= 0)")
            data[int(f.pair_index)] = (z, r)
        key = stamp_key(msg.header)
        self.headers.setdefault(key, msg.header)
        self._handle_events(self.protocol.on_round1(key, bs, data, time.monotonic()))

    def on_truth(self, msg: GroundTruthArray) -> None:
        self.truth = msg

    def poll(self) -> None:
        self._handle_events(self.protocol.poll(time.monotonic()))

    # --- outputs --------------------------------------------------------------
    def _handle_events(self, events) -> None:
        from sense_nodes.core.fwa.protocol import Detected, Located
        for ev in events:
            hdr = self.headers.get(ev.key, Header())
            if isinstance(ev, Detected):
                self.counts["instants"] += 1
                self.counts["bs_timeouts"] += len(ev.missing)
                if ev.missing:
                    self.get_logger().warning(f"instant {ev.key}: no report from {ev.missing} within "
                                              f"{self.p.timeout_s} s; deciding on {len(ev.decision.attention)} pairs")
                if ev.decision.present and ev.decision.selected and self.centre.second_round:
                    self.counts["uav_declared"] += 1
                    self.publish(self.selection_pub, self.message(hdr, ev.decision, None))
                else:
                    pos = getattr(ev.decision, "position", None)  # the one-round detector locates at once
                    pos = pos if pos is not None and np.isfinite(pos).all() else None
                    if not self.centre.second_round:
                        self.counts["uav_declared"] += bool(ev.decision.present)
                    self.counts["localized"] += pos is not None
                    self.publish_detection(hdr, ev.decision, pos)
            elif isinstance(ev, Located):
                if ev.missing:
                    self.get_logger().warning(f"instant {ev.key}: no round-2 answer from {ev.missing}")
                pos = ev.position if ev.position is not None and np.isfinite(ev.position).all() else None
                self.counts["localized"] += pos is not None
                self.publish_detection(hdr, ev.decision, pos)
            self.headers = {k: v for k, v in self.headers.items() if k in self.protocol.frames}

    def message(self, hdr, d, position) -> UavDetection:
        att = np.zeros(len(self.bs_ids) * int(self.p.num_cpe), np.float32)
        for k, a in d.attention.items():
            att[k] = a
        out = UavDetection(header=Header(stamp=hdr.stamp, frame_id=self.p.frame_id),
                           presence_probability=float(d.probability), uav_present=bool(d.present),
                           threshold=self.decision_threshold(d), attention=att.tolist(),
                           selected_pairs=[int(s) for s in d.selected], position_valid=position is not None)
        if position is not None:
            out.position = Point(x=float(position[0]), y=float(position[1]), z=float(position[2]))
        return out

    def decision_threshold(self, d) -> float:
        """The threshold ``d`` was decided with (the learned centre's depends
        on the BSs that answered)."""
        if self.subspace:
            return float(self.centre.threshold)
        return float(self.centre.threshold_for(d.attention))

    def publish_detection(self, hdr, d, position) -> None:
        msg = self.message(hdr, d, position)
        if self.publish(self.detection_pub, msg):
            self.publish(self.markers, self._markers(msg))

    def _markers(self, det: UavDetection) -> MarkerArray:
        hdr = det.header
        out = MarkerArray()
        bs = np.asarray(self.p.bs_xyz, float)
        cpe = np.asarray(self.p.cpe_xyz, float)
        bs = bs.reshape(-1, 3) if bs.size % 3 == 0 else np.zeros((0, 3))
        cpe = cpe.reshape(-1, 3) if cpe.size % 3 == 0 and cpe.size > 3 else np.zeros((0, 3))

        def pts(arr):
            return [Point(x=float(a[0]), y=float(a[1]), z=float(a[2])) for a in arr]
        for i, (name, arr, size, rgb) in enumerate((("bs", bs, 6.0, (0.3, 0.6, 1.0)), ("cpe", cpe, 3.0, (1.0, 0.8, 0.1)))):
            m = Marker(header=hdr, ns=name, id=i, type=Marker.CUBE_LIST, action=Marker.ADD,
                       scale=Vector3(x=size, y=size, z=size), color=ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=1.0),
                       points=pts(arr))
            m.pose.orientation.w = 1.0
            out.markers.append(m)
        n = int(self.p.num_cpe)
        if len(bs) and len(cpe) == n:
            lines = Marker(header=hdr, ns="pairs", id=2, type=Marker.LINE_LIST, action=Marker.ADD,
                           scale=Vector3(x=0.6))
            lines.pose.orientation.w = 1.0
            att = np.asarray(det.attention, float)
            top = max(float(att.max()) if att.size else 0.0, 1e-6)
            for k, a in enumerate(att):
                b, c = k // n, k % n
                if b >= len(bs):
                    continue
                w = float(a) / top
                lines.points += pts([bs[b], cpe[c]])
                col = ColorRGBA(r=w, g=0.2, b=1.0 - w, a=0.15 + 0.85 * w)
                lines.colors += [col, col]
            out.markers.append(lines)
        est = Marker(header=hdr, ns="estimate", id=3, type=Marker.SPHERE,
                     action=Marker.ADD if det.position_valid else Marker.DELETE,
                     scale=Vector3(x=8.0, y=8.0, z=8.0), color=ColorRGBA(r=1.0, g=0.1, b=0.1, a=0.9))
        est.pose.position = det.position
        est.pose.orientation.w = 1.0
        out.markers.append(est)
        if self.truth is not None:
            out.markers += truth_markers(self.truth).markers
        return out

    def diagnostic_values(self):
        return dict(self.counts, threshold=f"{self.centre.threshold:.4f}")


NODE_CLASS = FwaFusionCenter


def main(args=None) -> int:
    return run_node(FwaFusionCenter, args)
