"""`diffloc_server`: DiffLoc UE positioning from uplink SRS CSI, fused over
the base stations that measured (score fusion, Eq. 18-19), with a covariance.

Subscribes  csi (sense_nodes/CsiBundle, reliable): one frame per BS link,
            rx_id "bs<k>", H[rx, tx, k] as the model was trained on
            truth (sense_nodes/GroundTruthArray, reliable): drawn beside the
            estimates only
Publishes   position (sense_nodes/PositionEstimate, reliable): fused position
            and covariance, per-BS estimates, method, inference latency
            markers (visualization_msgs/MarkerArray, reliable): BSs, fused and
            per-BS estimates, truth
Serves      localize (sense_nodes/Localize)

Bundles that queue up while the model runs are estimated in one batch (up
to ``max_batch``). A link whose CFR is all zero carries no path and is left
out of the fusion; a bundle with no usable link is not localised (counted in
/diagnostics). Runs on CUDA when present, else on the CPU with
``cpu_threads`` torch threads.
"""
from __future__ import annotations

import collections
import time

import numpy as np
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from sense_nodes.msg import CsiBundle, GroundTruthArray, PositionEstimate
from sense_nodes.nodes.convert import csi_matrix
from sense_nodes.nodes.base import (MalformedMessage, RESULT_QOS, Param, SenseNode,
                                    run_node, stamped_like)
from sense_nodes.nodes.finite import first_nonfinite
from sense_nodes.srv import Localize

QUEUE_PERIOD_S = 0.002


class DiffLocServer(SenseNode):
    DEFAULT_NAME = "diffloc_server"
    PARAMS = (
        Param("checkpoint", "", "model from `sense train diffloc` ('' = the cache's ct.pt)"),
        Param("device", "auto", "where the networks run", choices=("auto", "cpu", "cuda")),
        Param("cpu_threads", 1, "torch CPU threads (0 = torch's default)", range=(0, 256)),
        Param("steps", 0, "sampler steps (0 = the model's default: 2 for ct, 200 for DDIM)", range=(0, 200),
              runtime=True),
        Param("draws", 8, "initial noises per estimate; their spread is the covariance", range=(1, 64),
              runtime=True),
        Param("fusion", "auto", "fusion of the stations: product of their Gaussian posteriors, or the sum of "
              "their noise predictions (Eq. 19), plain or prior-corrected; auto = the rule chosen on the "
              "validation split and recorded in the checkpoint",
              choices=("auto", "gaussian_product", "prior_corrected", "sum"), runtime=True),
        Param("projection", "int8", "dtype of the fingerprint projection (int8: a quarter of the float32 "
              "bytes, see `sense bench diffloc` for the speed and `sense eval diffloc --projection` for the error)",
              choices=("int8", "bfloat16", "float32"), runtime=True),
        Param("max_batch", 32, "most queued bundles estimated in one batch", range=(1, 1024), runtime=True),
        Param("per_bs", True, "also estimate from each BS alone (source_positions)", runtime=True),
        Param("ue_height_m", 1.5, "height reported with the 2D estimate, m", range=(-100.0, 1000.0), runtime=True),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        from sense_nodes.core.diffloc.estimator import Estimator
        from sense_nodes.core.diffloc.models import default_path

        path = self.p.checkpoint or str(default_path("ct"))
        self.est = self.load_model(
            lambda: Estimator.from_checkpoint(path, None if self.p.device == "auto" else self.p.device),
            hint="" if self.p.checkpoint else " (train it with: sense train diffloc --model ct)")
        self._apply()
        self.bs_pos = np.asarray(self.est.config["bs_pos"], float)
        self.queue: collections.deque = collections.deque()
        self.not_localised = 0
        self.links_without_path = 0
        self.batches: collections.deque = collections.deque(maxlen=200)
        self.last_truth = None
        self.get_logger().info(f"{self.est.method} from {path} on {self.est.device}: {self.est.num_bs} BSs, "
                               f"{self.est.ports} ports x {self.est.taps} taps")
        self.pub = self.create_publisher(PositionEstimate, "position", RESULT_QOS)
        self.markers = self.create_publisher(MarkerArray, "markers", RESULT_QOS)
        self.subscribe(CsiBundle, "csi", self.on_csi, RESULT_QOS, kind="csi")
        self.subscribe(GroundTruthArray, "truth", self.on_truth, RESULT_QOS, kind="truth", primary=False)
        self.srv = self.create_service(Localize, "localize", self.on_localize)
        self.timer = self.create_timer(QUEUE_PERIOD_S, self.drain)

    def _apply(self) -> None:
        self.est.configure(steps=self.p.steps or None, draws=self.p.draws, fusion=self.p.fusion,
                           projection=self.p.projection)
        if not self.p.steps:
            from sense_nodes.core.diffloc.estimator import DEFAULT_STEPS
            self.est.configure(steps=DEFAULT_STEPS.get(self.est.model, 1))

    def on_parameters_changed(self, names):
        self._apply()  # steps, draws, fusion and projection take effect with the next bundle

    # --- conversion -------------------------------------------------------------
    def links(self, msg: CsiBundle) -> dict:
        """{station index: H [N_r, N_t, K]}; MalformedMessage when a frame
        does not fit the model."""
        out = {}
        for f in msg.frames:
            try:
                b = int(f.rx_id.removeprefix("bs"))
            except ValueError:
                raise MalformedMessage(f"link {f.tx_id}->{f.rx_id}: receiver is not a base station 'bs<k>'") from None
            if not 0 <= b < self.est.num_bs:
                raise MalformedMessage(f"link to {f.rx_id}: the model knows stations bs0..bs{self.est.num_bs - 1}")
            if b in out:
                raise MalformedMessage(f"two frames for {f.rx_id} in one bundle")
            if f.num_rx_antennas * f.num_tx_antennas != self.est.ports:
                raise MalformedMessage(f"link to {f.rx_id}: {f.num_rx_antennas}x{f.num_tx_antennas} antenna "
                                       f"pairs, the model expects {self.est.ports}")
            out[b] = csi_matrix(f)
        if not out:
            raise MalformedMessage("bundle without frames")
        return out

    def fingerprints(self, msg: CsiBundle):
        from sense_nodes.core.diffloc.dataset import bundle_fingerprints
        from sense_nodes.core.diffloc.fingerprint import taps_for_span
        links = self.links(msg)
        f0 = msg.frames[0]
        taps = taps_for_span(f0.num_subcarriers, f0.subcarrier_spacing) if f0.subcarrier_spacing > 0 else -1
        if taps != self.est.taps:
            raise MalformedMessage(f"{f0.num_subcarriers} subcarriers at {f0.subcarrier_spacing:g} Hz give "
                                   f"{taps} taps; the model was trained on {self.est.taps}")
        try:
            return bundle_fingerprints(links, self.est.taps, self.est.num_bs, self.est.ports, self.est.magnitude,
                                       self.est.expected_fingerprint_dim)
        except ValueError as exc:
            raise MalformedMessage(str(exc)) from None

    # --- callbacks ----------------------------------------------------------------
    def on_truth(self, msg: GroundTruthArray) -> None:
        self.last_truth = msg

    def on_csi(self, msg: CsiBundle) -> None:
        fp, mask = self.fingerprints(msg)
        self.queue.append((time.perf_counter(), msg, fp, mask))

    def drain(self) -> None:
        if not self.queue:
            return
        batch = [self.queue.popleft() for _ in range(min(len(self.queue), self.p.max_batch))]
        self.batches.append(len(batch))
        t0s, msgs, fps, masks = zip(*batch)
        for est in self.localise(fps, masks, t0s, msgs):
            if est is not None and self.publish(self.pub, est):
                self.publish(self.markers, self._markers(est))

    def localise(self, fps, masks, t0s, msgs):
        """PositionEstimate per bundle (None when not localised)."""
        from sense_nodes.core.diffloc.covariance import cov3
        fp, mask = np.stack(fps), np.stack(masks)
        self.links_without_path += int((~mask).sum())
        out = self.est.estimate(fp, mask, per_bs=self.p.per_bs)
        now = time.perf_counter()
        res = []
        for i, msg in enumerate(msgs):
            if not out.localised[i] or not np.all(np.isfinite(out.fused_xy[i])) or not np.all(np.isfinite(out.cov[i])):
                self.not_localised += 1
                res.append(None)
                continue
            z = float(self.p.ue_height_m)
            e = PositionEstimate(header=stamped_like(msg.header), ue_id=msg.frames[0].tx_id if msg.frames else "",
                                 method=f"{self.est.method}-{self.est.fusion}",
                                 inference_latency_ms=float((now - t0s[i]) * 1e3))
            e.position = Point(x=float(out.fused_xy[i, 0]), y=float(out.fused_xy[i, 1]), z=z)
            e.covariance = [float(v) for v in cov3(out.cov[i])]
            for b in np.flatnonzero(mask[i]):
                p = out.per_bs_xy[i, b]
                if np.all(np.isfinite(p)):
                    e.source_ids.append(f"bs{b}")
                    e.source_positions.append(Point(x=float(p[0]), y=float(p[1]), z=z))
            res.append(e)
        return res

    def on_localize(self, request, response):
        t0 = time.perf_counter()
        try:
            fp, mask = self.fingerprints(request.bundle)
        except ValueError as exc:
            self.drop("localize", exc)
            response.success, response.message = False, str(exc)
            return response
        est = self.localise([fp], [mask], [t0], [request.bundle])[0]
        bad = None if est is None else first_nonfinite(est)
        if est is None:
            response.success, response.message = False, "no usable link at any base station: not localised"
        elif bad is not None:
            self.diagnostics.suppressed["localize"] += 1
            response.success, response.message = False, f"the estimate's {bad} is not finite"
        else:
            response.success, response.estimate = True, est
        return response

    def diagnostic_values(self) -> dict:
        return {"not_localised": self.not_localised, "links_without_path": self.links_without_path,
                "queued": len(self.queue), "median_batch": float(np.median(self.batches)) if self.batches else 0.0,
                "method": self.est.method}

    def _markers(self, est: PositionEstimate) -> MarkerArray:
        hdr = est.header
        out = MarkerArray()
        bs = Marker(header=hdr, ns="base_stations", id=0, type=Marker.CUBE_LIST, action=Marker.ADD,
                    scale=Vector3(x=6.0, y=6.0, z=6.0), color=ColorRGBA(r=0.9, g=0.9, b=0.9, a=1.0),
                    points=[Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in self.bs_pos])
        fused = Marker(header=hdr, ns="estimate", id=1, type=Marker.SPHERE, action=Marker.ADD,
                       scale=Vector3(x=4.0, y=4.0, z=4.0), color=ColorRGBA(r=0.1, g=1.0, b=0.2, a=1.0))
        fused.pose.position = est.position
        per = Marker(header=hdr, ns="per_bs", id=2, type=Marker.SPHERE_LIST, action=Marker.ADD,
                     scale=Vector3(x=2.5, y=2.5, z=2.5), color=ColorRGBA(r=0.3, g=0.6, b=1.0, a=0.8),
                     points=list(est.source_positions))
        for m in (bs, fused, per):
            m.pose.orientation.w = 1.0
        out.markers += [bs, fused, per]
        if self.last_truth is not None:
            truth = Marker(header=hdr, ns="truth", id=3, type=Marker.SPHERE_LIST, action=Marker.ADD,
                           scale=Vector3(x=4.0, y=4.0, z=4.0), color=ColorRGBA(r=1.0, g=0.2, b=0.2, a=0.8),
                           points=[o.position for o in self.last_truth.objects])
            truth.pose.orientation.w = 1.0
            out.markers.append(truth)
        return out


NODE_CLASS = DiffLocServer


def main(args=None) -> int:
    return run_node(DiffLocServer, args)
