"""FWA cooperative sensing deployment: `ros2 launch sense_nodes fwa.launch.py [bag:=PATH] [rate:=R] [rviz:=true]`.

The nodes, namespaces and parameter file come from
config/deployments/fwa.yaml, which `sense run fwa` reads too.
"""
from sense_nodes.runtime.launch import deployment_launch_description


def generate_launch_description():
    return deployment_launch_description("fwa")
