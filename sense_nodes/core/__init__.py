"""Core algorithms: pure numpy / scipy / torch. Nothing here imports rclpy or
message types, so everything is testable and benchmarkable without ROS."""
