"""Ray-traced CSI datasets (issue 5): Sionna RT generators, dataset files,
loaders and quality checks. Data layer: no rclpy, no message types."""
