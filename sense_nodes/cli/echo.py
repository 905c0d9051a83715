"""`sense echo TOPIC`: print the messages on a topic, as `ros2 topic echo`
does, for installs without the ros2 command line (the PyPI wheels). The
message type is taken from the graph; long arrays are shortened."""
from __future__ import annotations

import time

from sense_nodes.errors import UserError
from sense_nodes.cli.validate import check_positive


def add_arguments(parser):
    parser.add_argument("topic", help="topic to print, e.g. /bs/tracks")
    parser.add_argument("-n", "--count", type=int, default=0, help="stop after N messages (0 = no limit)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="give up when no publisher appears within S seconds (default 10)")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")


def format_message(msg, indent: str = "", max_items: int = 8) -> str:
    """A YAML-like rendering of a message, arrays cut to ``max_items``."""
    lines = []
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if hasattr(value, "get_fields_and_field_types"):
            lines.append(f"{indent}{name}:")
            lines.append(format_message(value, indent + "  ", max_items))
        elif isinstance(value, (list, tuple)) and value and hasattr(value[0], "get_fields_and_field_types"):
            lines.append(f"{indent}{name}: ({len(value)} items)")
            for item in value[:max_items]:
                lines.append(f"{indent}- ")
                lines.append(format_message(item, indent + "  ", max_items))
            if len(value) > max_items:
                lines.append(f"{indent}  ... {len(value) - max_items} more")
        elif hasattr(value, "__len__") and not isinstance(value, str) and len(value) > max_items:
            shown = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in list(value)[:max_items])
            lines.append(f"{indent}{name}: [{shown}, ...] ({len(value)} values)")
        else:
            if hasattr(value, "tolist"):
                value = value.tolist()
            lines.append(f"{indent}{name}: {value}")
    return "\n".join(lines)


def run(args):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from sense_nodes.nodes.source import message_class

    check_positive(args.timeout, "--timeout")
    check_positive(args.duration, "--duration")
    topic = args.topic if args.topic.startswith("/") else f"/{args.topic}"
    ctx = Context()
    rclpy.init(context=ctx)
    node = Node("sense_echo", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    seen = [0]
    try:
        deadline = time.monotonic() + args.timeout
        types = {}
        while time.monotonic() < deadline and topic not in types:
            ex.spin_once(timeout_sec=0.1)
            types = dict(node.get_topic_names_and_types())
        if topic not in types:
            known = ", ".join(sorted(types)) or "none"
            raise UserError(f"no publisher of {topic} within {args.timeout:g} s (topics seen: {known})")
        cls = message_class(types[topic][0])
        infos = node.get_publishers_info_by_topic(topic)
        best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                         else ReliabilityPolicy.RELIABLE)

        def show(msg):
            seen[0] += 1
            print(format_message(msg) + "\n---", flush=True)

        node.create_subscription(cls, topic, show, qos)
        end = None if args.duration is None else time.monotonic() + args.duration
        while ctx.ok() and (not args.count or seen[0] < args.count) and (end is None or time.monotonic() < end):
            ex.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return 0
