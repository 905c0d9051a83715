"""Learned off-grid ISAC imager of the low-altitude airspace
(``offgrid_isac_imaging.txt``: Huang et al., cooperative ISAC network).

Modules, following the paper's order:

- ``geometry``: base stations, full-duplex UPAs, ROI voxels, subcarriers (Sec. II, V-A).
- ``channel``: the cascaded BS-voxel-BS channel (Eq. 7, 10-11).
- ``sensing_matrix``: the sensing matrix A for sensing modes A/B/C (Eq. 13-14).
- ``targets``: on-/off-grid UAV scenes and CSI measurements y (Eq. 12-14).
- ``psf``: point spread function and off-grid error (Eq. 16-17).
- ``subspace_pursuit``: the on-grid CS baseline (Algorithm 1).
- ``backprojection``: the primary physics step A^H y (Eq. 20).
- ``networks``, ``losses``, ``training``: the physics-embedded DNN (Sec. IV-B/C).
- ``imager``: ``Imager.from_checkpoint(path, device).image(y)`` for the node.
- ``clutter``: a clutter map of the static scene from measured frames, projected
  out of each frame (the background removal of Sec. II, Table VI's residual).

Nothing here imports rclpy or message types.
"""
