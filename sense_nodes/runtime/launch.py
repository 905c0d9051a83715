"""ROS 2 launch glue: a LaunchDescription built from a deployment description.

Used by the files in ``launch/`` on a ROS 2 install (``launch`` and
``launch_ros`` come with ROS, not with the PyPI wheels; this module imports
them only when called).
"""
from __future__ import annotations

from sense_nodes.runtime.deployment import PACKAGE, load


def deployment_launch_description(name: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    dep = load(name)
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    actions = [
        DeclareLaunchArgument("bag", default_value="", description="rosbag2 file for the source nodes to replay"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback / simulation speed"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with this deployment's view"),
    ]
    for spec in dep.nodes:
        params = [str(dep.params_file)]
        if spec.source:
            params.append({"bag": bag, "rate": rate})
        else:
            # Sources publish /clock, live (simulation time) and replaying.
            params.append({"use_sim_time": True})
        actions.append(Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                            namespace=spec.namespace, parameters=params,
                            remappings=list(spec.remappings.items()), output="screen"))
    if dep.rviz_file is not None:
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2",
                            arguments=["-d", str(dep.rviz_file)],
                            condition=IfCondition(LaunchConfiguration("rviz"))))
    return LaunchDescription(actions)
