"""DiffLoc deployment: `ros2 launch sense_nodes diffloc.launch.py [bag:=PATH] [rate:=R] [rviz:=true]`.

The nodes, namespaces and parameter file come from
config/deployments/diffloc.yaml, which `sense run diffloc` reads too.
"""
from sense_nodes.runtime.launch import deployment_launch_description


def generate_launch_description():
    return deployment_launch_description("diffloc")
