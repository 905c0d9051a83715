"""The BSense base station's geometry, frame clock and object classes
(BSense paper, Sections 2 and 4.1), defined once and passed down: the
simulator builds its sensor from these, the core's filters and the nodes take
them as defaults, the evaluation reads the truth with them. The module sits
at the bottom of the import graph (it imports nothing of the package).

Where the paper gives a value it is used; the field of view and the blind
zone did not survive in our copy and are our choices.
"""
from __future__ import annotations

FRAME_S = 0.64                 # one point-cloud frame every 0.64 s (paper, Section 2)
ANTENNA_HEIGHT_M = 23.0        # AAU height above ground (paper, Section 4.1)
#: Antenna position in the site frame (REP-103, metres): the AAU above the origin.
ANTENNA_POS = (0.0, 0.0, ANTENNA_HEIGHT_M)
MAX_RANGE_M = 1000.0           # paper
MIN_RANGE_M = 30.0             # blind zone (our choice)
HFOV_DEG = 120.0               # horizontal field of view (our choice)
EL_MIN_DEG = -15.0             # elevation field of view (our choice)
EL_MAX_DEG = 45.0

# Object classes of the simulator's truth: the codes of sense_nodes/msg/GroundTruth.msg.
UNKNOWN, UAV, BIRD, VEHICLE = 0, 1, 2, 3
