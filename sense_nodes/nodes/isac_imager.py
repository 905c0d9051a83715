"""`isac_imager`: off-grid ISAC imaging on every CSI bundle; voxel image,
detections and RViz markers. Three solvers (parameter `solver`): the learned
imager (physics-embedded CNN on A^H y, Sec. IV-B), the training-free gridless
imager (``core.imaging.gridless``), whose detections are its continuous
position estimates, and subspace pursuit (Algorithm 1, on-grid).

Subscribes  csi (sense_nodes/CsiBundle): one frame per BS pair, tx_id/rx_id
            "bs<i>", H[rx, tx, k] as the imager's geometry expects
Publishes   image (sense_nodes/VoxelImage, reliable)
            image_markers (visualization_msgs/MarkerArray): voxels coloured by
            scattering coefficient, detections as spheres
Runs on CUDA when present, else on the CPU (parameter `device`).
"""
from __future__ import annotations


import numpy as np
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from sense_nodes.msg import CsiBundle, VoxelImage
from sense_nodes.nodes.convert import csi_matrix
from sense_nodes.nodes.base import (MalformedMessage, NonFiniteInput, RESULT_QOS, Param, SenseNode,
                                    run_node, stamped_like)

# A CFR amplitude is a path gain (far below 1 for any real link); the bound
# leaves room for any front-end scaling while keeping the imager's float32
# sums over thousands of values finite.
MAX_CSI_AMPLITUDE = 1e6
SOLVERS = ("learned", "gridless", "sp")
SOLVER_NAMES = {"learned": "physics-embedded CNN on A^H y", "gridless": "gridless (continuous positions)",
                "sp": "subspace pursuit (on-grid)"}


class IsacImager(SenseNode):
    DEFAULT_NAME = "isac_imager"
    PARAMS = (
        Param("solver", "gridless", "learned | gridless | sp. Default gridless: on the paper's "
              "off-grid 2D test it is the one that detects most UAVs at or below the paper's FAR "
              "(3.22 %) within a frame budget (`sense eval imaging --tables g`, `sense bench "
              "imaging`); learned is the fastest; sp is the on-grid baseline",
              choices=SOLVERS),
        Param("checkpoint", "", "imager checkpoint from `sense train imaging` ('' = the shipped "
              "net10.pt); its imaging geometry is used by every solver"),
        Param("device", "auto", "where the network runs", choices=("auto", "cpu", "cuda")),
        Param("threshold", 0.1, "detection threshold in sigma / 0.1 m units (a voxel group at or "
              "above it is one target, as the eval counts them)", range=(0.0, 100.0), runtime=True),
        Param("marker_min", 0.1, "voxels below this value are not drawn", range=(0.0, 100.0), runtime=True),
        # one frame's network is small: on the 2-core machines one thread
        # images a 2D frame in 9.5 ms, two in 16.6 ms (sense bench imaging --threads)
        Param("cpu_threads", 1, "torch CPU threads for the network (0 = torch's default)", range=(0, 256)),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        from sense_nodes.core.imaging.geometry import measurement_pairs, voxel_centres
        from sense_nodes.core.imaging.imager import CHECKPOINT_DIR, Imager

        path = self.p.checkpoint or str(CHECKPOINT_DIR / "net10.pt")
        learned = self.load_model(
            lambda: Imager.from_checkpoint(path, None if self.p.device == "auto" else self.p.device))
        self.cfg = learned.cfg
        self.imager = self._solver(learned)
        self.imager.threshold = self.p.threshold
        self.pairs = set(measurement_pairs(self.cfg))
        self.centres = voxel_centres(self.cfg)
        self.get_logger().info(f"solver {self.p.solver} ({SOLVER_NAMES[self.p.solver]}), geometry of "
                               f"{path}: grid {self.cfg.grid_shape}, {len(self.pairs)} BS pairs, "
                               f"mode {self.cfg.mode}")
        self.last_detections = 0
        self.pub = self.create_publisher(VoxelImage, "image", RESULT_QOS)
        self.markers = self.create_publisher(MarkerArray, "image_markers", RESULT_QOS)
        self.subscribe(CsiBundle, "csi", self.on_csi, RESULT_QOS, kind="csi")

    def _solver(self, learned):
        if self.p.solver == "learned":
            return learned
        if self.p.solver == "sp":
            from sense_nodes.core.imaging.imager import SpImager
            return SpImager(self.cfg, self.p.threshold, int(round(self.cfg.mean_uavs)) or 1)
        from sense_nodes.core.imaging.gridless import GridlessImager
        return GridlessImager(self.cfg)

    def on_parameters_changed(self, names):
        self.imager.threshold = self.p.threshold

    def effective_parameters(self):
        return dict(super().effective_parameters(), threshold=self.imager.threshold)

    def status_phrase(self) -> str:
        return f"{self.diagnostics.processed} images, {self.last_detections} detections in the last one"

    def channels(self, msg: CsiBundle) -> dict:
        """Per-pair CSI (N_f, tx, rx) from the bundle's frames; MalformedMessage
        when a frame does not fit the imager's geometry."""
        na, nf = self.cfg.n_antennas, self.cfg.n_subcarriers
        out = {}
        for f in msg.frames:
            try:
                pair = (int(f.tx_id.removeprefix("bs")), int(f.rx_id.removeprefix("bs")))
            except ValueError:
                raise MalformedMessage(f"link {f.tx_id}->{f.rx_id} is not a BS pair 'bs<i>'") from None
            if (f.num_rx_antennas, f.num_tx_antennas, f.num_subcarriers) != (na, na, nf):
                raise MalformedMessage(
                    f"link {f.tx_id}->{f.rx_id} has {f.num_rx_antennas}x{f.num_tx_antennas}x{f.num_subcarriers}"
                    f" CSI; the imager expects {na}x{na}x{nf}")
            h = csi_matrix(f, MAX_CSI_AMPLITUDE)
            key = pair if pair in self.pairs else pair[::-1]  # reciprocal pairs carry the same channel
            out[key] = h.transpose(2, 1, 0)
        return out

    def on_csi(self, msg: CsiBundle) -> None:
        from sense_nodes.core.imaging.imager import stack_measurements

        try:
            y = stack_measurements(self.cfg, self.channels(msg))
        except NonFiniteInput:  # one value spoils the whole image: the frame goes
            self.count_nonfinite("csi frames", 1)
            return
        except ValueError as exc:  # a pair missing or the wrong shape
            raise MalformedMessage(str(exc)) from None
        voxels, detections = self.imager.image(y)
        out = VoxelImage(header=stamped_like(msg.header), solver=SOLVER_NAMES[self.p.solver])
        nx, ny = self.cfg.grid_shape[:2]
        nz = self.cfg.grid_shape[2] if self.cfg.is_3d else 1
        first = self.centres[0]
        out.origin = Point(x=float(first[0]), y=float(first[1]), z=float(first[2]))
        out.voxel_size = [float(self.cfg.voxel_m)] * 3
        out.dimensions = [nx, ny, nz]
        out.values = np.asarray(voxels, np.float32).reshape(-1).tolist()
        out.detections = [Point(x=float(d.position[0]), y=float(d.position[1]), z=float(d.position[2]))
                          for d in detections]
        out.detection_scores = [float(d.value) for d in detections]
        self.last_detections = len(out.detections)
        if self.publish(self.pub, out):
            self.publish(self.markers, self._markers(out, voxels))

    def _markers(self, img: VoxelImage, voxels: np.ndarray) -> MarkerArray:
        flat = np.asarray(voxels, float).reshape(-1)
        keep = np.flatnonzero(flat >= self.p.marker_min)
        top = max(float(flat.max()), 1.0)
        cubes = Marker(header=img.header, ns="voxels", id=0, type=Marker.CUBE_LIST, action=Marker.ADD,
                       scale=Vector3(x=self.cfg.voxel_m, y=self.cfg.voxel_m, z=self.cfg.voxel_m))
        cubes.pose.orientation.w = 1.0
        for i in keep:
            c = self.centres[i]
            v = min(flat[i] / top, 1.0)
            cubes.points.append(Point(x=float(c[0]), y=float(c[1]), z=float(c[2])))
            cubes.colors.append(ColorRGBA(r=float(v), g=float(0.3 * (1 - v)), b=float(1 - v), a=0.3 + 0.6 * float(v)))
        dets = Marker(header=img.header, ns="detections", id=1, type=Marker.SPHERE_LIST, action=Marker.ADD,
                      scale=Vector3(x=2.0, y=2.0, z=2.0), color=ColorRGBA(r=0.1, g=1.0, b=0.2, a=1.0),
                      points=list(img.detections))
        dets.pose.orientation.w = 1.0
        return MarkerArray(markers=[cubes, dets])


NODE_CLASS = IsacImager


def main(args=None) -> int:
    return run_node(IsacImager, args)
