"""RViz markers shared by the nodes (truth, tracks, detections)."""
from __future__ import annotations

from geometry_msgs.msg import Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

# GroundTruth object classes -> colour (r, g, b)
CLASS_COLOURS = {0: (0.7, 0.7, 0.7), 1: (0.1, 1.0, 0.2), 2: (1.0, 0.8, 0.1), 3: (0.3, 0.6, 1.0)}
CLASS_NAMES = {0: "unknown", 1: "uav", 2: "bird", 3: "vehicle"}


def truth_markers(truth_msg, lifetime_s: float = 1.5, size_m: float = 12.0) -> MarkerArray:
    """One sphere of ``size_m`` and one label per true object; hidden
    objects drawn faint."""
    out = MarkerArray()
    out.markers.append(Marker(header=truth_msg.header, ns="truth", action=Marker.DELETEALL))
    for obj in truth_msg.objects:
        r, g, b = CLASS_COLOURS.get(obj.object_class, CLASS_COLOURS[0])
        alpha = 0.9 if obj.visible else 0.3
        sphere = Marker(header=truth_msg.header, ns="truth", id=int(obj.id) * 2, type=Marker.SPHERE,
                        action=Marker.ADD, scale=Vector3(x=size_m, y=size_m, z=size_m),
                        color=ColorRGBA(r=r, g=g, b=b, a=alpha))
        sphere.pose.position = obj.position
        sphere.pose.orientation.w = 1.0
        sphere.lifetime.sec = int(lifetime_s)
        sphere.lifetime.nanosec = int((lifetime_s % 1) * 1e9)
        label = Marker(header=truth_msg.header, ns="truth", id=int(obj.id) * 2 + 1, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, scale=Vector3(z=1.2 * size_m), color=ColorRGBA(r=r, g=g, b=b, a=1.0),
                       text=f"{CLASS_NAMES.get(obj.object_class, '?')} {obj.id}" + ("" if obj.visible else " (hidden)"))
        label.pose.position.x = obj.position.x
        label.pose.position.y = obj.position.y
        label.pose.position.z = obj.position.z + 1.7 * size_m
        label.pose.orientation.w = 1.0
        label.lifetime = sphere.lifetime
        out.markers += [sphere, label]
    return out


def detection_markers(detections_msg, size_m: float = 6.0) -> MarkerArray:
    """The kept objects of one frame as spheres, blue (barely kept) to red
    (confident), by the larger of their spatial and velocity confidences."""
    from geometry_msgs.msg import Point
    spheres = Marker(header=detections_msg.header, ns="detections", id=0, type=Marker.SPHERE_LIST,
                     action=Marker.ADD, scale=Vector3(x=size_m, y=size_m, z=size_m))
    spheres.pose.orientation.w = 1.0
    for d in detections_msg.detections:
        c = min(max(d.spatial_confidence, d.velocity_confidence, 0.0), 1.0)
        spheres.points.append(Point(x=d.centroid.x, y=d.centroid.y, z=d.centroid.z))
        spheres.colors.append(ColorRGBA(r=float(c), g=0.2, b=float(1.0 - c), a=0.8))
    return MarkerArray(markers=[spheres])
