"""The demo's page and its imaging score: one picture per system on one
page, and the true UAVs marked in the voxels that hold them."""
import numpy as np

from sense_nodes.eval import suite_pictures
from sense_nodes.eval.suite_demo import truth_grid


def test_truth_grid_marks_the_voxel_of_each_uav_and_ignores_one_outside():
    img = {"values": np.zeros((4, 5, 1)), "origin": np.array([-10.0, -10.0, 50.0]), "voxel": np.array([5.0] * 3)}
    grid = truth_grid(img, np.array([[-10.0, -10.0, 80.0], [4.0, 8.0, 60.0], [100.0, 0.0, 50.0]]))
    assert grid.sum() == 2 and grid[0, 0, 0] == 1 and grid[3, 4, 0] == 1


def test_page_shows_one_picture_per_system(tmp_path):
    rng = np.random.default_rng(0)
    est, true = rng.normal(size=(5, 2)) * 10, rng.normal(size=(5, 2)) * 10
    suite_pictures.diffloc_picture({"est": est, "true": true, "cov": [np.eye(2)] * 5,
                                    "bs": np.array([[-50.0, -50.0], [50.0, 50.0]])}, tmp_path / "diffloc.png")
    suite_pictures.fwa_picture({"bs": np.array([[-50.0, 0, 100], [50.0, 0, 100]]), "cpe": rng.normal(size=(3, 3)) * 40,
                                "detection": {"attention": np.array([0.1, 0.5, 0.0, 0.2, 0.1, 0.1]), "valid": True,
                                              "p": 0.9, "xyz": np.array([1.0, 2.0, 50.0])},
                                "truth": np.array([[0.0, 0.0, 50.0]])}, tmp_path / "fwa.png")
    values = np.zeros((8, 8, 1))
    values[2, 3, 0] = 1.0
    suite_pictures.imaging_picture({"image": {"values": values, "origin": np.zeros(3), "voxel": np.ones(3),
                                              "detections": np.array([[2.0, 3.0, 0.0]])},
                                    "truth": np.array([[2.2, 2.9, 0.0]])}, tmp_path / "imaging.png")
    (tmp_path / "bsense.png").write_bytes((tmp_path / "fwa.png").read_bytes())
    sections = [{"title": name, "did": f"ran {name}", "png": f"{name}.png",
                 "figures": {"f1_pct": 50.0, "paper_f1_pct": 95.56}} for name in ("bsense", "imaging", "diffloc", "fwa")]
    suite_pictures.page(sections, tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text()
    assert html.count("<img ") == 4
    assert all((tmp_path / f"{n}.png").stat().st_size > 1000 for n in ("imaging", "diffloc", "fwa"))
    assert "NOT met" in html
