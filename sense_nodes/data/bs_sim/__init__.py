"""Simulated 5G-A base-station point clouds as hard as the BSense site
(the BSense paper, Sections 2-4).

Pure numpy/scipy: no rclpy and no message types.

Public API::

    from sense_nodes.data.bs_sim import library
    sc = library.scenario("star_1_r1", seed=None, site_seed=None)   # KeyError if unknown
    len(sc), sc.dt, sc.name, sc.spec          # frames, 0.64 s, name, ScenarioSpec
    f = sc.frame(k)                           # random access, same seeds -> same bytes
    f.stamp_ns, f.points, f.labels, f.truth   # BS_POINT_DTYPE, LABEL_DTYPE, TRUTH_DTYPE
    for f in sc: ...                          # every frame in order

    library.cases(family=None), library.folds(k=5)
    bag_io.write_bag(sc, path), stats.count(sc), stats.measure(counts)
    plot.plot_scenario(sc, "fig3.png")

Modules: sensor (radar equation, resolution, errors), site (map, occlusion,
noise and clutter maps), clutter (fingerprinted static clutter), ghosts
(multipath, sidelobe, false alarms), targets (UAVs, birds, vehicles, direct
returns), trajectories (the paper's flight paths), fingerprint (a point's
signal metrics), scenario (frames), library (named cases, folds), stats
(difficulty figures), plot (Figure 3), bag_io (rosbag2).
"""

from pathlib import Path as _Path

# Modules whose code decides the frames (stats, plot, bag_io do not).
_FRAME_MODULES = ("sensor", "site", "clutter", "fingerprint", "ghosts", "targets", "trajectories",
                  "scenario", "library")


def sim_version() -> str:
    """A hash of the simulator code that draws the frames: a cache of
    anything computed from scenarios (a fitted noise model, say) is stale
    once this changes."""
    from sense_nodes.data.paths import source_hash
    here = _Path(__file__).parent
    return source_hash([here / f"{name}.py" for name in _FRAME_MODULES], _FRAME_MODULES)
