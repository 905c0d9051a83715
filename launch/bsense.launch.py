"""BSense deployment: `ros2 launch sense_nodes bsense.launch.py [bag:=PATH] [rate:=R] [rviz:=true]`.

The nodes, namespaces, remappings and parameter file come from
config/deployments/bsense.yaml, which `sense run bsense` reads too.
"""
from sense_nodes.runtime.launch import deployment_launch_description


def generate_launch_description():
    return deployment_launch_description("bsense")
