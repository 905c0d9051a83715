"""Data layer: scenario simulators, ray-traced CSI datasets, dataset files and
rosbag2 record/replay. No rclpy here either."""
