"""Packaging: one list of executables and one of dependencies feed both
install paths, and `colcon build` installs the package over the ROS wheels."""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def _requirements():
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[=<>!~\[ ]", line, maxsplit=1)[0].lower())
    return names


def _executables():
    out = {}
    for line in (ROOT / "executables.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, target = line.split()
            out[name] = target
    return out


def test_every_ros_dependency_of_package_xml_is_a_pinned_requirement():
    tree = ET.parse(ROOT / "package.xml")
    deps = {e.text for tag in ("depend", "exec_depend", "build_depend", "buildtool_depend")
            for e in tree.getroot().iter(tag)}
    # launch, launch_ros and rviz2 come with a ROS install, not with the PyPI wheels.
    deps -= {"launch", "launch_ros", "rviz2"}
    python = {d for d in deps if d.startswith("python3-")}
    wanted = {"ros-" + d.replace("_", "-") for d in deps - python}
    wanted |= {PYTHON_KEYS[d] for d in python}
    missing = wanted - _requirements()
    assert not missing, f"package.xml dependencies missing from requirements.txt: {sorted(missing)}"


# rosdep key -> the pinned pip requirement it stands for
PYTHON_KEYS = {"python3-numpy": "numpy", "python3-scipy": "scipy", "python3-yaml": "pyyaml",
               "python3-matplotlib": "matplotlib", "python3-tqdm": "tqdm", "python3-h5py": "h5py",
               "python3-sklearn": "scikit-learn"}


def test_package_xml_declares_the_python_libraries_rosdep_knows():
    tree = ET.parse(ROOT / "package.xml")
    deps = {e.text for e in tree.getroot().iter("exec_depend")}
    assert set(PYTHON_KEYS) <= deps and "rviz2" in deps


def test_every_requirement_is_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"requirements.txt: '{line}' is not pinned"


def test_setup_py_reads_the_same_lists():
    out = subprocess.run([sys.executable, "setup.py", "--quiet", "egg_info", "--egg-base", "/tmp"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    info = Path("/tmp/sense_nodes.egg-info")
    requires = {re.split(r"[=<>]", r)[0].lower() for r in (info / "requires.txt").read_text().split()}
    assert requires == _requirements()
    scripts = (info / "entry_points.txt").read_text()
    for name, target in _executables().items():
        assert f"{name} = {target}" in scripts
    shutil.rmtree(info, ignore_errors=True)


def test_every_executable_has_a_node_class_and_main():
    import importlib
    for name, target in _executables().items():
        module_name, func = target.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, func)), f"{name}: {target} is not callable"
        assert hasattr(module, "NODE_CLASS"), f"{name}: {module_name} has no NODE_CLASS"


@pytest.mark.slow
def test_colcon_build_installs_the_package(tmp_path):
    src = tmp_path / "src" / "sense_nodes"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}",
               CMAKE_PREFIX_PATH=str(VENV), AMENT_PREFIX_PATH=str(VENV))
    build = subprocess.run(
        [str(VENV / "bin" / "colcon"), "build",
         "--cmake-args", f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}", "-DBUILD_TESTING=OFF"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = tmp_path / "install" / "sense_nodes"
    for name in _executables():
        exe = prefix / "lib" / "sense_nodes" / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} not installed"
    share = prefix / "share" / "sense_nodes"
    for rel in ("package.xml", "executables.txt", "msg/Track.msg", "srv/Localize.srv"):
        assert (share / rel).is_file(), f"{rel} not installed"
    for launch in (ROOT / "launch").glob("*.launch.py"):
        assert (share / "launch" / launch.name).is_file()
    assert (tmp_path / "install" / "setup.bash").is_file(), "colcon-bash missing: no setup.bash"
    site = next(prefix.glob("lib/python3*/site-packages"))
    # the installed tree alone: generated messages plus our modules in one package
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sense_nodes.msg, sense_nodes.runtime.deployment as d; "
         "from sense_nodes.msg import TrackArray; print(d.__file__)"],
        env=dict(env, PYTHONPATH=str(site)), cwd=tmp_path, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert str(site) in probe.stdout
