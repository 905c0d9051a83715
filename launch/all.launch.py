"""The whole suite (BSense, imaging, DiffLoc, FWA): `ros2 launch sense_nodes all.launch.py [bag:=PATH] [rate:=R] [rviz:=true]`.

The nodes, namespaces and parameter file come from
config/deployments/all.yaml, which `sense run all` reads too.
"""
from sense_nodes.runtime.launch import deployment_launch_description


def generate_launch_description():
    return deployment_launch_description("all")
