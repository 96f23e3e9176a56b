"""Prometheus metrics of every hazardwatch process, one small set per service.

Each set registers into its own CollectorRegistry (served by hazardwatch.ops), so a process exposes only what it
measures and tests can build several side by side. Label values are bounded by the registry (enterprises,
rules, levels, channels) or by small fixed vocabularies (dead-letter reasons, outcomes): never per sensor or per
reading, which would make the metrics endpoint itself a load problem.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Readings per Kafka record / per detector batch: from single-reading messages to a whole drain under load.
_BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000)
# Detector time per batch: the event loop is shared, so anything past ~100 ms delays timers and other agents.
_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("hw_mqtt_messages", "MQTT messages taken from the broker", registry=r)
        self.readings_in = Counter("hw_readings_in", "readings accepted and forwarded to Kafka", ["enterprise"],
                                   registry=r)
        self.dead_letters = Counter("hw_dead_letters", "rejected readings or messages sent to the dead-letter topic",
                                    ["reason"], registry=r)
        self.batch_readings = Histogram("hw_bridge_batch_readings", "readings per Kafka record (one hazard source)",
                                        buckets=_BATCH_BUCKETS, registry=r)
        self.kafka_retries = Counter("hw_kafka_send_retries", "Kafka sends retried (MQTT acks held meanwhile)",
                                     registry=r)
        self.inbox = Gauge("hw_bridge_inbox_depth", "MQTT messages received and not yet forwarded", registry=r)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.readings = Counter("hw_worker_readings", "readings evaluated by the detectors", registry=r)
        self.batch_readings = Histogram("hw_worker_batch_readings", "readings per detector batch",
                                        buckets=_BATCH_BUCKETS, registry=r)
        self.detector_seconds = Histogram("hw_detector_seconds", "time the detector engine took per batch",
                                          buckets=_SECONDS_BUCKETS, registry=r)
        self.detections = Counter("hw_detections", "detector events published", ["rule"], registry=r)
        self.lag = Gauge("hw_consumer_lag", "messages in a partition not yet committed by this worker",
                         ["topic", "partition"], registry=r)
        self.write_retries = Counter("hw_influx_write_retries", "InfluxDB writes retried (acks held meanwhile)",
                                     registry=r)
        self.points = Counter("hw_influx_points", "points InfluxDB accepted", ["measurement"], registry=r)
        self.alerts = Counter("hw_alerts", "alert records published", ["level", "rule"], registry=r)
        self.alert_events = Counter("hw_alert_events", "alert lifecycle events published", ["kind", "action"],
                                    registry=r)
        self.notifications = Counter("hw_notifications", "notification attempts by channel and outcome",
                                     ["channel", "outcome"], registry=r)
        self.duplicates_refused = Counter("hw_alert_duplicates_refused",
                                          "replayed detections the ledger refused to publish twice", registry=r)


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("hw_console_requests", "console HTTP requests", ["method", "status"], registry=r)
