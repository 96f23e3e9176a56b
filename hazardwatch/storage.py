"""InfluxDB storage layout: three buckets with legal retention, and the 5-minute downsampling task.

- `B` (HW_INFLUX_BUCKET): raw readings, kept 90 days (HW_INFLUX_RAW_DAYS, at least 90).
- `B_5m`: 5-minute statistics (mean, min, max, n) per sensor, kept 800 days (HW_INFLUX_STATS_DAYS, at least 730).
- `B_alarms`: every alert record and lifecycle transition, kept 800 days (HW_INFLUX_ALARM_DAYS, at least 730).
domain.md asks for raw >= 7 d and statistics/alarm records >= 1 y (coal mines, AQ 6201); the issue sets the
bar at 90 d and 2 y for every hazard kind, which covers both. 0 means keep forever.

Alarms get their own bucket rather than sharing the raw one: an alarm record is evidence (安全生产法 Art. 36
forbids destroying it), and it must outlive the raw readings by years without keeping those readings too.

`hazardwatch storage` applies all of it idempotently (creates what is missing, brings retention and the task's
Flux up to date); the worker only makes sure the buckets exist, so a fresh development machine works at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from influxdb_client import BucketRetentionRules, InfluxDBClient, TaskCreateRequest

from hazardwatch.config import ConfigError, Settings

DAY_S = 86400
# Windows recomputed on each run: readings are accepted up to HW_MAX_LATENESS_S (10 min by default) late, so
# the task rewrites the last four complete windows; a rewrite of the same point is idempotent.
RECOMPUTE = "20m"


@dataclass(frozen=True)
class Layout:
    raw: str
    stats: str
    alarms: str
    raw_days: int
    stats_days: int
    alarm_days: int

    def retention_s(self, bucket: str) -> int:
        days = {self.raw: self.raw_days, self.stats: self.stats_days, self.alarms: self.alarm_days}[bucket]
        return days * DAY_S


def _days(name: str, default: int, minimum: int, why: str) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a whole number of days; "
                          f"unset it to use {default}") from None
    if value != 0 and value < minimum:
        raise ConfigError(f"environment variable {name}={value} is below the {minimum} days required "
                          f"({why}); use at least {minimum}, or 0 to keep forever")
    return value


def layout(settings: Settings) -> Layout:
    b = settings.influx_bucket
    return Layout(raw=b, stats=f"{b}_5m", alarms=f"{b}_alarms",
                  raw_days=_days("HW_INFLUX_RAW_DAYS", 90, 90, "raw readings are kept at least 90 days"),
                  stats_days=_days("HW_INFLUX_STATS_DAYS", 800, 730, "5-minute statistics at least 2 years"),
                  alarm_days=_days("HW_INFLUX_ALARM_DAYS", 800, 730, "alarm records at least 2 years"))


def alarm_bucket(settings: Settings) -> str:
    return f"{settings.influx_bucket}_alarms"


def task_name(settings: Settings) -> str:
    """One task per raw bucket, named after it: several deployments (or test sandboxes) can share an org."""
    return f"{settings.influx_bucket}-downsample-5m"


def downsample_flux(settings: Settings) -> str:
    lay = layout(settings)
    return f'''import "date"

option task = {{name: "{task_name(settings)}", every: 5m, offset: 30s}}

// Only whole windows: now() is the run's scheduled time, so stop falls on a 5-minute boundary and a partly
// filled window is never written over a complete one.
stop = date.truncate(t: now(), unit: 5m)
start = date.sub(d: {RECOMPUTE}, from: stop)
data = from(bucket: "{lay.raw}")
    |> range(start: start, stop: stop)
    |> filter(fn: (r) => r._measurement == "reading" and r._field == "v")
stat = (fn, name) => data
    |> aggregateWindow(every: 5m, fn: fn, createEmpty: false)
    |> set(key: "_field", value: name)

union(tables: [stat(fn: mean, name: "mean"), stat(fn: min, name: "min"), stat(fn: max, name: "max"),
               stat(fn: count, name: "n")])
    |> set(key: "_measurement", value: "reading_5m")
    |> to(bucket: "{lay.stats}", org: "{settings.influx_org}")
'''


def _client(settings: Settings) -> InfluxDBClient:
    return InfluxDBClient(url=settings.influx_url, token=settings.influx_token(), org=settings.influx_org,
                          timeout=20_000)


def ensure_buckets(settings: Settings, client: InfluxDBClient, update_retention: bool,
                   raw_retention_s: int | None = None) -> list[str]:
    """Create missing buckets; with update_retention also bring existing ones to the configured retention.
    raw_retention_s overrides the raw bucket's (test sandboxes keep hours of simulated past, not 90 days)."""
    lay = layout(settings)
    api = client.buckets_api()
    done = []
    for name in (lay.raw, lay.stats, lay.alarms):
        keep = raw_retention_s if (name == lay.raw and raw_retention_s is not None) else lay.retention_s(name)
        rules = [BucketRetentionRules(type="expire", every_seconds=keep)] if keep else []
        found = api.find_bucket_by_name(name)
        if found is None:
            api.create_bucket(bucket_name=name, org=settings.influx_org, retention_rules=rules)
            done.append(f"created bucket {name} (retention {keep // DAY_S if keep else 'forever'} d)")
        elif update_retention:
            current = found.retention_rules[0].every_seconds if found.retention_rules else 0
            if current != keep:
                found.retention_rules = rules
                api.update_bucket(found)
                done.append(f"bucket {name}: retention {current // DAY_S} d -> {keep // DAY_S} d")
    return done


def ensure_task(settings: Settings, client: InfluxDBClient) -> str:
    api = client.tasks_api()
    flux = downsample_flux(settings)
    name = task_name(settings)
    existing = [t for t in api.find_tasks(name=name) if t.name == name]
    if not existing:
        org = client.organizations_api().find_organizations(org=settings.influx_org)[0]
        api.create_task(task_create_request=TaskCreateRequest(org_id=org.id, flux=flux, status="active",
                                                              description="hazardwatch 5-minute statistics"))
        return f"created task {name}"
    task = existing[0]
    if task.flux.strip() != flux.strip() or task.status != "active":
        task.flux, task.status = flux, "active"
        api.update_task(task)
        return f"updated task {name}"
    return f"task {name} up to date"


def ensure_storage(settings: Settings, with_task: bool = True) -> list[str]:
    """Everything `hazardwatch storage` does; returns what it changed, for the operator to read."""
    with _client(settings) as client:
        done = ensure_buckets(settings, client, update_retention=True)
        if with_task:
            done.append(ensure_task(settings, client))
    return done


def ensure_buckets_exist(settings: Settings) -> list[str]:
    with _client(settings) as client:
        return ensure_buckets(settings, client, update_retention=False)
