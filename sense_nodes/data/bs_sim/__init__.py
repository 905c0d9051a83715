"""Simulated 5G-A base-station point clouds as hard as the BSense site
(the BSense paper, Sections 2-4; issue 3).

Pure numpy/scipy: no rclpy and no message types. Start with
:func:`sense_nodes.data.bs_sim.library.scenario` (a named case) or
:class:`sense_nodes.data.bs_sim.scenario.Scenario` (any spec).
"""
