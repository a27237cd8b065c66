"""Prometheus metrics, one registry per running app (tests may run several in a process).

Components add their own metrics on ``ctx.metrics.registry``; the spine's are here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events_in = Counter("edge_events_in", "Sensor events received", ["source"], registry=r)
        self.events_persisted = Gauge("edge_events_persisted", "Events committed to the store", registry=r)
        self.bus_published = Gauge("edge_bus_published", "Events published on the bus", registry=r)
        self.bus_drops = Gauge("edge_bus_drops", "Events dropped by slow bus subscribers", registry=r)
        self.component_restarts = Counter("edge_component_restarts", "Component restarts after failure", ["component"], registry=r)
        self.component_up = Gauge("edge_component_up", "1 when the component is running and healthy", ["component"], registry=r)
        self.loop_lag = Gauge("edge_loop_lag_seconds", "Event loop lag measured by the health task", registry=r)
        self.ready = Gauge("edge_ready", "1 once READY=1 was sent", registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
