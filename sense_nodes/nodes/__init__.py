"""ROS 2 nodes: thin rclpy adapters over the core, one module per executable."""
