"""Entry points for ``hazardwatch grafana render|provision`` (hazardwatch/cli.py adds them with add_parser).

    render_cmd(args)     args.out (default deploy/grafana), args.influx_url (optional)
    provision_cmd(args)  args.url (optional; else HW_GRAFANA_URL, else http://127.0.0.1:3000),
                         args.influx_url (optional; URL Grafana uses to reach InfluxDB)
    add_parser(sub)      adds the ``grafana`` sub-command to an argparse sub-parser set (fn=grafana_cmd)

Each returns the process exit code: 0 done, 1 Grafana unreachable / refused / failed (message on stderr).
Configuration and registry errors propagate as ConfigError / RegistryError, which hazardwatch.cli turns into
exit code 2 like every other command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hazardwatch.config import PROJECT_ROOT, load_settings
from hazardwatch.registry import load_registry

DEFAULT_OUT = PROJECT_ROOT / "deploy" / "grafana"


def render_cmd(args: argparse.Namespace) -> int:
    from hazardwatch.grafana.files import render

    settings = load_settings()
    registry = load_registry(settings.registry_path)
    out = Path(getattr(args, "out", None) or DEFAULT_OUT)
    written = render(settings, registry, out, getattr(args, "influx_url", None))
    print(f"wrote {len(written)} files under {out} for registry {registry.path} "
          f"({len(registry.districts)} districts, {len(registry.sources)} hazard sources)")
    return 0


def provision_cmd(args: argparse.Namespace) -> int:
    from hazardwatch.grafana.provision import ProvisionError, connect, credential_from_env, grafana_url, provision

    settings = load_settings()
    registry = load_registry(settings.registry_path)
    url = grafana_url(url=getattr(args, "url", None))
    try:
        provision(settings, registry, connect(url, credential_from_env()),
                  influx_url=getattr(args, "influx_url", None))
    except ProvisionError as exc:
        print(f"hazardwatch grafana: {exc}", file=sys.stderr)
        return 1
    return 0


def grafana_cmd(args: argparse.Namespace) -> int:
    return render_cmd(args) if args.action == "render" else provision_cmd(args)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    sp = sub.add_parser("grafana", help="Grafana dashboards from the registry: write provisioning files (render) "
                        "or provision a running Grafana over its HTTP API (provision)")
    sp.add_argument("action", choices=["render", "provision"])
    sp.add_argument("--out", help=f"render: output directory (default {DEFAULT_OUT})")
    sp.add_argument("--url", help="provision: Grafana base URL (default HW_GRAFANA_URL or http://127.0.0.1:3000)")
    sp.add_argument("--influx-url", dest="influx_url",
                    help="InfluxDB URL as Grafana sees it (render default HW_INFLUX_URL or http://influxdb:8086; "
                         "provision default HW_GRAFANA_INFLUX_URL, HW_INFLUX_URL or the local InfluxDB)")
    sp.set_defaults(fn=grafana_cmd)
    return sp
