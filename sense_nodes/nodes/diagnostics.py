"""What every node reports on ``/diagnostics`` once a second: input rate,
processing latency, and the counts of malformed messages dropped, callback
errors (bugs), non-finite input items dropped, non-finite outputs suppressed
and messages lost while the node fell behind."""
from __future__ import annotations

import collections
import statistics
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class Diagnostics:
    """Rate, latency and drop counters of one node, over a sliding window."""

    def __init__(self, window: int = 200):
        self.arrivals: collections.deque[float] = collections.deque(maxlen=window)
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=window)
        self.processed = 0
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.dropped: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        # non-finite input items dropped at the converter (points, detections, frames)
        self.nonfinite: collections.Counter[str] = collections.Counter()
        # outputs refused because they held a non-finite value
        self.suppressed: collections.Counter[str] = collections.Counter()
        # messages published to the node but never taken (its queue overflowed)
        self.lost: collections.Counter[str] = collections.Counter()

    def record(self, t_start: float) -> None:
        now = time.perf_counter()
        if self.first_arrival is None:
            self.first_arrival = t_start
        self.last_arrival = t_start
        self.arrivals.append(t_start)
        self.latencies_ms.append((now - t_start) * 1e3)
        self.processed += 1

    def rate_hz(self) -> float:
        if len(self.arrivals) < 2:
            return 0.0
        span = self.arrivals[-1] - self.arrivals[0]
        if time.perf_counter() - self.arrivals[-1] > 5 * max(span / (len(self.arrivals) - 1), 1.0):
            return 0.0  # the stream stopped
        return (len(self.arrivals) - 1) / span if span > 0 else 0.0

    def mean_rate_hz(self) -> float:
        """Messages a second from the first to the last one processed (the
        run's rate, which stays meaningful after the stream stopped)."""
        if self.processed < 2 or self.last_arrival == self.first_arrival:
            return 0.0
        return (self.processed - 1) / (self.last_arrival - self.first_arrival)

    def latency_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    def status(self, name: str, extra: dict[str, Any] | None = None) -> DiagnosticStatus:
        dropped = sum(self.dropped.values())
        errors = sum(self.errors.values())
        level = DiagnosticStatus.OK
        message = "ok"
        nonfinite = sum(self.nonfinite.values())
        suppressed = sum(self.suppressed.values())
        lost = sum(self.lost.values())
        if errors:
            level, message = DiagnosticStatus.ERROR, f"{errors} callback errors"
        elif suppressed:
            level, message = DiagnosticStatus.ERROR, f"{suppressed} non-finite outputs suppressed"
        elif dropped or nonfinite or lost:
            level, message = DiagnosticStatus.WARN, (f"{dropped} malformed messages dropped, "
                                                     f"{nonfinite} non-finite input items dropped, "
                                                     f"{lost} messages lost (fell behind)")
        values = {"rate_hz": f"{self.rate_hz():.3f}", "latency_ms": f"{self.latency_ms():.3f}",
                  "processed": str(self.processed), "dropped": str(dropped), "errors": str(errors),
                  "nonfinite_dropped": str(nonfinite), "outputs_suppressed": str(suppressed),
                  "lost": str(lost)}
        values.update({f"dropped[{k}]": str(v) for k, v in self.dropped.items()})
        values.update({f"errors[{k}]": str(v) for k, v in self.errors.items()})
        values.update({f"nonfinite_dropped[{k}]": str(v) for k, v in self.nonfinite.items()})
        values.update({f"outputs_suppressed[{k}]": str(v) for k, v in self.suppressed.items()})
        values.update({f"lost[{k}]": str(v) for k, v in self.lost.items()})
        values.update({k: str(v) for k, v in (extra or {}).items()})
        return DiagnosticStatus(level=level, name=name, message=message, hardware_id="sense_nodes",
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])
