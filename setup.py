"""pip install path of sense_nodes (development install and the `sense` command).

The ROS install path is CMakeLists.txt (colcon). Both read the same lists:
executables.txt for node executables and requirements.txt for dependencies.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def _lines(name):
    out = []
    for line in (HERE / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _requirements():
    # `--extra-index-url`-style options are for pip, not for metadata.
    return [r for r in _lines("requirements.txt") if not r.startswith("-")]


def _console_scripts():
    scripts = ["sense = sense_nodes.cli.main:main"]
    for line in _lines("executables.txt"):
        name, target = line.split()
        scripts.append(f"{name} = {target}")
    return scripts


setup(
    name="sense_nodes",
    version="0.1.0",
    description="ROS 2 perception suite: UAV tracking, positioning, cooperative sensing and imaging from base stations",
    packages=find_packages(include=["sense_nodes", "sense_nodes.*"]),
    # model checkpoints shipped with the package (TrajFormer, imaging nets)
    package_data={"sense_nodes": ["core/*/checkpoints/*.pt", "core/*/checkpoints/*/*.pt"]},
    python_requires=">=3.10",
    install_requires=_requirements(),
    entry_points={"console_scripts": _console_scripts()},
)
