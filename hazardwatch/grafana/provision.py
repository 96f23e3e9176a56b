"""Provision a live Grafana (11.3) over its HTTP API with grafana-client.

Order: health (GET /api/health, no credentials needed) -> data source (GET by uid; POST /api/datasources
when absent, PUT /api/datasources/uid/:uid otherwise) -> folders (GET /api/folders/:uid; POST /api/folders,
else PUT /api/folders/:uid with overwrite) -> dashboards (POST /api/dashboards/db with folderUid,
overwrite: true and a message; Grafana bumps the version of an existing uid). Uids are stable, so a second
run updates everything in place and creates nothing.

Credentials come from the environment or files, never from code: HW_GRAFANA_TOKEN / HW_GRAFANA_TOKEN_FILE
(service-account token, role Admin), or HW_GRAFANA_USER + HW_GRAFANA_PASSWORD / HW_GRAFANA_PASSWORD_FILE.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from hazardwatch.config import ConfigError, Settings
from hazardwatch.grafana import DATASOURCE_UID, GRAFANA_VERSION, datasource
from hazardwatch.grafana.dashboards import build
from hazardwatch.grafana.naming import scopes
from hazardwatch.registry import Registry

DEFAULT_URL = "http://127.0.0.1:3000"
_CREDENTIAL_HELP = ("set HW_GRAFANA_TOKEN (or HW_GRAFANA_TOKEN_FILE) to a service-account token with the Admin "
                    "role, or HW_GRAFANA_USER with HW_GRAFANA_PASSWORD (or HW_GRAFANA_PASSWORD_FILE)")


class ProvisionError(RuntimeError):
    """Provisioning cannot go on; the message says what to do."""


@dataclass
class Report:
    url: str
    grafana_version: str = ""
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"Grafana {self.grafana_version} at {self.url}: {len(self.created)} created, "
                f"{len(self.updated)} updated")


def _secret(env: Mapping[str, str], name: str) -> str | None:
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE={path}: cannot read it ({exc.strerror}); {_CREDENTIAL_HELP}") from None


def credential_from_env(env: Mapping[str, str] | None = None) -> str | tuple[str, str]:
    """A token (preferred) or (user, password) for grafana-client."""
    env = os.environ if env is None else env
    token = _secret(env, "HW_GRAFANA_TOKEN")
    if token:
        return token
    user, password = env.get("HW_GRAFANA_USER"), _secret(env, "HW_GRAFANA_PASSWORD")
    if user and password:
        return user, password
    raise ConfigError(f"no Grafana credentials: {_CREDENTIAL_HELP}")


def grafana_url(env: Mapping[str, str] | None = None, url: str | None = None) -> str:
    env = os.environ if env is None else env
    return (url or env.get("HW_GRAFANA_URL") or DEFAULT_URL).rstrip("/")


def connect(url: str, credential: str | tuple[str, str], timeout: float = 10.0) -> GrafanaApi:
    """grafana-client for ``url``; a sub-path (https://host/grafana) is kept (from_url would drop its slash)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Grafana URL {url!r} is not http(s)://host[:port][/path]; set HW_GRAFANA_URL or --url")
    prefix = parts.path.strip("/")
    api = GrafanaApi(credential, host=parts.hostname, port=parts.port, protocol=parts.scheme,
                     url_path_prefix=f"{prefix}/" if prefix else "", timeout=timeout)
    api.url = url
    return api


def _fail(what: str, url: str, exc: Exception) -> ProvisionError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return ProvisionError(f"Grafana at {url} refused the credentials (401) while {what}: {_CREDENTIAL_HELP}")
    if isinstance(exc, GrafanaClientError) and exc.status_code == 403:
        return ProvisionError(f"Grafana at {url} denied {what} (403 {exc.message}): the account needs the Admin "
                              "role (datasources:write, folders:write, dashboards:write); a data source or "
                              "dashboard managed by file provisioning cannot be changed over the API")
    if isinstance(exc, GrafanaException):
        return ProvisionError(f"Grafana at {url} failed while {what}: {exc.message}")
    return ProvisionError(f"Grafana at {url} is not reachable while {what} ({exc}): start Grafana "
                          f"({GRAFANA_VERSION}), or point HW_GRAFANA_URL / --url at it")


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
        return True
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return False
        raise


def provision(settings: Settings, registry: Registry, api: GrafanaApi, *, influx_url: str | None = None,
              influx_token: str | None = None, say: Callable[[str], None] = print) -> Report:
    """Ensure data source, folders and dashboards; returns what was created and what updated."""
    url = str(api.url or api.client.url)
    report = Report(url)
    step = "checking health (GET /api/health)"
    try:
        health = api.client.GET("/health")
        report.grafana_version = str(health.get("version", "?")) if isinstance(health, dict) else "?"
        if isinstance(health, dict) and health.get("database") not in (None, "ok"):
            raise ProvisionError(f"Grafana at {url} reports its database as {health.get('database')!r}; "
                                 "fix Grafana before provisioning")
        if not report.grafana_version.startswith(GRAFANA_VERSION.rsplit(".", 1)[0]):
            say(f"warning: Grafana {report.grafana_version}; the dashboards are built for {GRAFANA_VERSION}")
        say(f"Grafana {report.grafana_version} at {url} is up")

        step = f"reading data source {DATASOURCE_UID}"
        body = datasource.api_body(settings, registry, influx_url or datasource.api_url(settings),
                                   influx_token or datasource.influx_token(settings))
        if _exists(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID)):
            step = f"updating data source {DATASOURCE_UID}"
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)
            _done(report.updated, f"datasource {DATASOURCE_UID}", "updated", say)
        else:
            step = f"creating data source {DATASOURCE_UID}"
            api.datasource.create_datasource(body)
            _done(report.created, f"datasource {DATASOURCE_UID}", "created", say)

        for scope in scopes(registry):
            step = f"reading folder {scope.folder_uid}"
            if _exists(lambda uid=scope.folder_uid: api.folder.get_folder(uid)):
                step = f"updating folder {scope.folder_uid}"
                api.folder.update_folder(scope.folder_uid, title=scope.folder_title, overwrite=True)
                _done(report.updated, f"folder {scope.folder_uid}", "updated", say)
            else:
                step = f"creating folder {scope.folder_uid}"
                api.folder.create_folder(scope.folder_title, uid=scope.folder_uid)
                _done(report.created, f"folder {scope.folder_uid}", "created", say)

        for spec in build(settings, registry):
            step = f"saving dashboard {spec.uid}"
            doc = spec.to_json()
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]
            result = api.dashboard.update_dashboard({
                "dashboard": doc, "folderUid": spec.folder_uid, "overwrite": True,
                "message": f"hazardwatch grafana provision: registry {registry.path.name}, content {digest}"})
            version = result.get("version") if isinstance(result, dict) else None
            bucket, verb = (report.created, "created") if version == 1 else (report.updated, "updated")
            _done(bucket, f"dashboard {spec.uid}", f"{verb} (version {version})", say)
    except ProvisionError:
        raise
    except (GrafanaException, niquests.exceptions.RequestException) as exc:
        raise _fail(step, url, exc) from exc
    say(report.summary())
    return report


def _done(bucket: list[str], item: str, verb: str, say: Callable[[str], None]) -> None:
    bucket.append(item)
    say(f"  {item}: {verb}")
