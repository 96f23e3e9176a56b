"""`hazardwatch` command line: services, topics, bridge, worker, simulator, scenarios, demo, registry checks."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from hazardwatch.config import ConfigError, load_settings
from hazardwatch.registry import RegistryError, load_registry


def _services(args: argparse.Namespace) -> int:
    from hazardwatch import services

    s = load_settings()
    if args.action == "up":
        services.up(s, args.only)
    elif args.action == "down":
        services.down(s, args.only)
    else:
        rows = services.status(s)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                state = "healthy" if r["healthy"] else ("running, not answering" if r["pid"] else "stopped")
                print(f"{r['service']:<10} {state:<24} pid={r['pid'] or '-':<8} port={r['port']}  log={r['log']}")
        return 0 if all(r["healthy"] for r in rows) else 3
    return 0


def _topics(args: argparse.Namespace) -> int:
    from hazardwatch.topics import ensure_topics

    s = load_settings()
    for line in asyncio.run(ensure_topics(s)):
        print(line)
    return 0


def _registry(args: argparse.Namespace) -> int:
    s = load_settings()
    reg = load_registry(args.path or s.registry_path)
    kinds: dict[str, int] = {}
    for src in reg.sources.values():
        kinds[src.kind] = kinds.get(src.kind, 0) + 1
    print(f"registry {reg.path}: OK — {reg.city_zh} {reg.city_en}: {len(reg.districts)} districts, "
          f"{len(reg.enterprises)} enterprises, {len(reg.sources)} hazard sources {kinds}, {len(reg.sensors)} sensors")
    return 0


def _acl(args: argparse.Namespace) -> int:
    from hazardwatch.services import render_acl

    print(render_acl(load_settings()))
    return 0


def _storage(args: argparse.Namespace) -> int:
    from hazardwatch.storage import ensure_storage, layout

    s = load_settings()
    lay = layout(s)
    for line in ensure_storage(s):
        print(f"storage: {line}")
    forever = "forever"
    print(f"storage: {lay.raw} raw {lay.raw_days or forever} d; {lay.stats} 5-min statistics "
          f"{lay.stats_days or forever} d; {lay.alarms} alarm records {lay.alarm_days or forever} d")
    return 0


def _bridge(args: argparse.Namespace) -> int:
    from hazardwatch import logs
    from ingest.bridge import run_bridge

    logs.setup("bridge")
    return run_bridge(load_settings(), client_id=args.client_id)


def _worker(args: argparse.Namespace) -> int:
    from hazardwatch.worker import run_worker

    return run_worker(load_settings(), loglevel=args.loglevel)


def _simulate(args: argparse.Namespace) -> int:
    from simulators.publisher import run_simulator

    return run_simulator(load_settings(), rate=args.rate, duration=args.duration, inject=args.inject,
                         inject_after=args.inject_after, batch=not args.single)


def _alerts(args: argparse.Namespace) -> int:
    from alerts.tail import tail_alerts

    return asyncio.run(tail_alerts(load_settings(), from_beginning=args.from_beginning, limit=args.limit,
                                   timeout=args.timeout))


def _console(args: argparse.Namespace) -> int:
    import getpass

    from alerts.console import users

    s = load_settings()
    reg = load_registry(s.registry_path)
    path = users.users_path(s.home)
    if args.action == "serve":
        from alerts.console.service import run_console
        from hazardwatch import logs

        logs.setup("console")
        users.load_users(path, reg)  # fail here, with the file's problems, not on the first login
        asyncio.run(run_console(s, reg, args.host or s.host, args.port))
        return 0
    if args.action == "init-users":
        if path.exists() and not args.force:
            print(f"hazardwatch: {path} exists; use --force to replace it (every password changes)", file=sys.stderr)
            return 1
        made = users.init_users(path, reg)
        out = s.secrets_dir / "console"
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, pw in made.items():
            f = out / name
            f.write_text(pw + "\n")
            f.chmod(0o600)
        print(f"wrote {path} with {len(made)} users; their first passwords are in {out}/<user> (chmod 600): "
              "hand each to its owner, then delete the file")
        return 0
    if not args.user:
        print("hazardwatch: console passwd needs the user name", file=sys.stderr)
        return 2
    pw = getpass.getpass(f"new password for {args.user}: ")
    if pw != getpass.getpass("again: "):
        print("hazardwatch: the two passwords differ; nothing changed", file=sys.stderr)
        return 1
    users.set_password(path, args.user, pw)
    print(f"password of {args.user} changed in {path}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from alerts import audit
    from alerts.agents import audit_path

    s = load_settings()
    path = args.file or audit_path(s)
    if args.action == "verify":
        verdict = audit.verify(path)
        state = "intact 完整" if verdict.ok else "TAMPERED 已被篡改"
        where = f" (first untrusted record: line {verdict.line})" if not verdict.ok else ""
        print(f"audit log {path}: {state}, {verdict.records} records{where}\n{verdict.problem}")
        for note in verdict.notes:
            print(f"  note: {note}")
        return 0 if verdict.ok else 4
    if not args.alert_id:
        print("hazardwatch: audit export needs an alert id (see the console or `hazardwatch alerts`)",
              file=sys.stderr)
        return 2
    from alerts.timeline import export_report

    reg = load_registry(s.registry_path)
    try:
        report = export_report(path, args.alert_id, reg, fmt=args.format,
                               settings=None if args.no_readings else s)
    except LookupError as exc:
        print(f"hazardwatch: {exc}", file=sys.stderr)
        return 1
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(report, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(report)
    return 0


def _scenario(args: argparse.Namespace) -> int:
    import tempfile
    import time
    from pathlib import Path

    from simulators.scenarios import SCENARIOS

    if args.name == "list":
        for name, make in SCENARIOS.items():
            sc = make(load_registry(load_settings().registry_path), args.seed)
            print(f"{name:<14} {sc.title_zh} / {sc.title_en}: {sc.duration_s / 3600:.1f} h simulated, "
                  f"{sc.readings:,} readings, sources {', '.join(sc.sources)}")
        return 0
    names = list(SCENARIOS) if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"hazardwatch: no scenario {unknown[0]!r}; choose one of: all, list, {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    from simulators.playback import play_engine
    from simulators.score import score

    s = load_settings()
    reg = load_registry(s.registry_path)
    reports = []
    for name in names:
        sc = SCENARIOS[name](reg, args.seed)
        if args.offline:
            t0_ms = int((time.time() - sc.duration_s) * 1000)
            records = play_engine(sc, reg, t0_ms, args.step or 60.0)
        else:
            from hazardwatch import services
            from simulators.runner import run_scenario

            services.up(s)
            with tempfile.TemporaryDirectory() as tmp:
                res = run_scenario(sc, Path(tmp), step_s=args.step)
            t0_ms, records = res.t0_ms, res.alerts
            if res.stored != res.published or res.dead:
                print(f"  WARNING: {res.published} published, {res.stored} stored, {len(res.dead)} dead letters",
                      file=sys.stderr)
        rep = score(sc, records, t0_ms)
        print(rep.render())
        reports.append(rep)
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2),
                                   encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if all(r.ok for r in reports) else 1


def _demo(args: argparse.Namespace) -> int:
    from hazardwatch.demo import run_demo

    return run_demo(load_settings(), duration=args.duration, keep_services=not args.stop_services)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hazardwatch", description="重大危险源监测预警 / major hazard source monitoring")
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("services", help="install, start, stop and check Mosquitto, Kafka and InfluxDB on loopback")
    sp.add_argument("action", choices=["up", "down", "status"])
    sp.add_argument("--only", nargs="*", help="mosquitto, kafka, influxdb")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=_services)

    sub.add_parser("topics", help="create the Kafka topics with their partition counts").set_defaults(fn=_topics)
    sub.add_parser("storage", help="create the InfluxDB buckets with their retention and the 5-minute "
                   "downsampling task").set_defaults(fn=_storage)

    sp = sub.add_parser("registry", help="validate a registry file and summarise it")
    sp.add_argument("path", nargs="?")
    sp.set_defaults(fn=_registry)

    sub.add_parser("mqtt-acl", help="print the per-enterprise Mosquitto ACL for the registry").set_defaults(fn=_acl)

    from hazardwatch.grafana.cli import add_parser as add_grafana

    add_grafana(sub)

    sp = sub.add_parser("bridge", help="run the MQTT -> Kafka ingest bridge")
    sp.add_argument("--client-id", default="hw-bridge-1")
    sp.set_defaults(fn=_bridge)

    sp = sub.add_parser("worker", help="run the Faust worker (detectors, InfluxDB writer, alerts)")
    sp.add_argument("--loglevel", default="warn", choices=["crit", "error", "warn", "info", "debug"])
    sp.set_defaults(fn=_worker)

    sp = sub.add_parser("simulate", help="publish plausible readings for the registry over MQTT")
    sp.add_argument("--rate", type=float, default=1.0, help="speed-up: 1 = each sensor at its own period")
    sp.add_argument("--duration", type=float, default=60.0, help="wall seconds to run (0 = forever)")
    sp.add_argument("--inject", action="append", default=[],
                    help="SENSOR=VALUE: drive a sensor to VALUE (e.g. S01-T03-LT=93.5) to cross a limit")
    sp.add_argument("--inject-after", type=float, default=5.0, help="wall seconds before the injection starts")
    sp.add_argument("--single", action="store_true", help="one reading per MQTT message instead of batches")
    sp.set_defaults(fn=_simulate)

    sp = sub.add_parser("scenario", help="play an incident scenario with ground truth and report the alerts' timing")
    sp.add_argument("name", help="a scenario name, 'all', or 'list'")
    sp.add_argument("--offline", action="store_true",
                    help="through the detector engine only (seconds), instead of the real pipeline")
    sp.add_argument("--step", type=float, help="simulated seconds per lockstep step (default: about 200 steps)")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--json", help="also write the reports as JSON here")
    sp.set_defaults(fn=_scenario)

    sp = sub.add_parser("alerts", help="print alert records from the alerts topic, in Chinese and English")
    sp.add_argument("--from-beginning", action="store_true")
    sp.add_argument("--limit", type=int, default=0)
    sp.add_argument("--timeout", type=float, default=0.0, help="stop after this many idle seconds (0 = never)")
    sp.set_defaults(fn=_alerts)

    sp = sub.add_parser("console", help="the duty console web app, and its users")
    sp.add_argument("action", choices=["serve", "init-users", "passwd"])
    sp.add_argument("user", nargs="?", help="for passwd: the user name")
    sp.add_argument("--host", help="address to bind (default HW_HOST, 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8480)
    sp.add_argument("--force", action="store_true", help="init-users: replace an existing users file")
    sp.set_defaults(fn=_console)

    sp = sub.add_parser("audit", help="verify the hash-chained audit log, or export one alert's timeline")
    sp.add_argument("action", choices=["verify", "export"])
    sp.add_argument("alert_id", nargs="?")
    sp.add_argument("--file", help="audit log (default $HW_HOME/audit/<app id>.jsonl or HW_AUDIT_PATH)")
    sp.add_argument("--format", choices=["md", "html"], default="md")
    sp.add_argument("--output", "-o", help="write the report here instead of printing it")
    sp.add_argument("--no-readings", action="store_true", help="do not query InfluxDB for the readings around it")
    sp.set_defaults(fn=_audit)

    sp = sub.add_parser("demo", help="start everything, simulate sensors with a limit crossing, print alerts")
    sp.add_argument("--duration", type=float, default=75.0, help="seconds of simulation")
    sp.add_argument("--stop-services", action="store_true", help="stop Mosquitto, Kafka and InfluxDB afterwards")
    sp.set_defaults(fn=_demo)

    args = p.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (ConfigError, RegistryError) as exc:
        print(f"hazardwatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from hazardwatch.services import ServiceError

        if isinstance(exc, ServiceError):
            print(f"hazardwatch: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
