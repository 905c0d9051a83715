"""BSense core (paper ``bsense.txt``, Section 3): point-, object- and
trajectory-level filtering of 5G-A base-station point clouds.

Pure numpy / scipy / torch; no ROS imports. Modules:

* :mod:`.cubes` - 3-D cubes and vectorised point-to-cube indexing
* :mod:`.normality` - Henze-Zirkler multivariate normality test
* :mod:`.noise_model` - per-cube noise fingerprints, Mahalanobis filter, updater, model files (3.2)
* :mod:`.clustering` - DBSCAN on the position-Doppler distance of Eq. 12 (3.3.1)
* :mod:`.object_filter` - Kuhn-Munkres matching, spatial / velocity confidences (3.3.2-3.3.4)
* :mod:`.imm_ukf` - angle-safe IMM over CV and CTRV UKFs (3.4.1), all tracks at once in arrays
* :mod:`.tracker` - the tracker's frame (3.4.1); :mod:`.track_roles` its associator, initiator,
  confirmation rule and deleter; :mod:`.tracks` the per-track record and its observations
* :mod:`.trajformer` - the TrajFormer classifier (3.4.2); :mod:`.verification` applies it to tracks;
  :mod:`.training` collects windows, calibrates thresholds and trains it
* :mod:`.pipeline` - the whole chain per frame with the ablation stages of Figure 13
"""
