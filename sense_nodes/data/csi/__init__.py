"""Ray-traced CSI datasets: Sionna RT generators, dataset files,
loaders and quality checks. Data layer: no rclpy, no message types."""
