"""Scenarios written as rosbag2 files read back unchanged."""
import numpy as np

from sense_nodes.cli.main import main as sense
from sense_nodes.data import cloud_codec
from sense_nodes.data import bags
from sense_nodes.data.bs_sim import library


def test_bag_round_trip(tmp_path):
    assert sense(["sim", "write", "multi_uav", "--out", str(tmp_path), "--max-frames", "13", "--seed", "4"]) == 0
    sc = library.scenario("multi_uav", seed=4)
    path = tmp_path / "multi_uav"
    topics = {t.name: (t.msgtype, t.count) for t in bags.topics(path)}
    assert topics == {"/bs/points": ("sensor_msgs/msg/PointCloud2", 13),
                      "/bs/truth": ("sense_nodes/msg/GroundTruthArray", 13),
                      "/clock": ("rosgraph_msgs/msg/Clock", 13)}
    clocks, k_pts, k_truth = [], 0, 0
    for topic, _, stamp, msg in bags.read(path):
        if topic == "/clock":
            clocks.append(stamp)
        elif topic == "/bs/points":
            f = sc.frame(k_pts)
            assert stamp == f.stamp_ns == bags.stamp_ns_of(msg)
            assert msg.header.frame_id == "bs"
            assert cloud_codec.decode(msg).tobytes() == f.points.tobytes()
            k_pts += 1
        else:
            f = sc.frame(k_truth)
            assert [o.id for o in msg.objects] == f.truth["id"].tolist()
            assert [o.visible for o in msg.objects] == f.truth["visible"].tolist()
            pos = np.array([[o.position.x, o.position.y, o.position.z] for o in msg.objects])
            np.testing.assert_allclose(pos, f.truth["position"])
            n_uav = sum(o.object_class == 1 for o in msg.objects)
            assert n_uav == (2 if k_truth >= 10 else 0)      # the two UAVs take off at frame 10
            k_truth += 1
    assert k_pts == k_truth == 13
    assert np.all(np.diff(clocks) == 640_000_000)


def test_write_refuses_to_overwrite(tmp_path, capsys):
    args = ["sim", "write", "straight_0_r1", "--out", str(tmp_path), "--max-frames", "2"]
    assert sense(args) == 0
    assert sense(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sense(args + ["--overwrite"]) == 0
