"""A recording, stateful stand-in for Grafana 11.3's HTTP API, for contract tests (Grafana cannot run here).

It listens on 127.0.0.1 (port 0), checks every request against tests/contract/grafana_11.3_api.yaml (method,
path, Authorization present when required, required body fields), records it, and keeps data sources,
folders and dashboards the way Grafana does (uids, ids, versions, folder membership, 404/409/412 replies), so
provisioning code sees create-then-update behaviour. A request the spec does not allow is answered with an
error *and* kept in ``violations``; tests assert that list is empty.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).with_name("grafana_11.3_api.yaml")


@dataclass
class Endpoint:
    id: str
    method: str
    path: str
    auth: bool
    pattern: re.Pattern[str]
    required_body: tuple[str, ...] = ()
    one_of_body: tuple[str, ...] = ()
    required_dashboard: tuple[str, ...] = ()


def load_spec(path: Path = SPEC_PATH) -> list[Endpoint]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for e in doc["endpoints"]:
        assert e["source"] in doc["sources"], f"endpoint {e['id']} cites unknown source {e['source']}"
        regex = "^" + re.sub(r"\\\{\w+\\\}", r"(?P<uid>[^/]+)", re.escape(e["path"])) + "$"
        out.append(Endpoint(e["id"], e["method"], e["path"], e["auth"], re.compile(regex),
                            tuple(e.get("required_body", ())), tuple(e.get("one_of_body", ())),
                            tuple(e.get("required_dashboard", ()))))
    return out


@dataclass
class Recorded:
    method: str
    path: str
    endpoint: str | None
    authorization: str | None
    body: Any
    status: int = 0


@dataclass
class State:
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {"dashboard", "folderUid", ...}
    next_id: int = 1


class GrafanaStandIn:
    """Start with ``with GrafanaStandIn(token="t") as g: g.url``; credentials: the token, or user/password."""

    def __init__(self, token: str = "contract-token", user: str = "admin", password: str = "admin-pw",
                 role: str = "Admin", version: str = "11.3.1") -> None:
        self.spec = load_spec()
        self.token, self.user, self.password, self.role, self.version = token, user, password, role, version
        self.state = State()
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def do_PUT(self) -> None:
                standin._handle(self, "PUT")

            def do_DELETE(self) -> None:
                standin._handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GrafanaStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- request handling ------------------------------------------------------------------------------
    def _authorised(self, header: str | None) -> bool:
        if not header:
            return False
        if header == f"Bearer {self.token}":
            return True
        if header.startswith("Basic "):
            return base64.b64decode(header[6:]).decode() == f"{self.user}:{self.password}"
        return False

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        auth = h.headers.get("Authorization")
        with self._lock:
            status, reply = self._route(method, path, auth, body)
        data = json.dumps(reply).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _route(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        match = next(((e, m) for e in self.spec if e.method == method and (m := e.pattern.match(path))), None)
        rec = Recorded(method, path, match[0].id if match else None, auth, body)
        self.requests.append(rec)
        if match is None:
            self.violations.append(f"{method} {path}: not in the Grafana 11.3 API spec (grafana_11.3_api.yaml)")
            rec.status = 404
            return 404, {"message": "Not found"}
        ep, m = match
        if ep.auth and not auth:
            self.violations.append(f"{method} {path}: no Authorization header on an authenticated endpoint")
        if ep.auth and not self._authorised(auth):
            rec.status = 401
            return 401, {"message": "Unauthorized"}
        problem = self._check_body(ep, body)
        if problem:
            self.violations.append(f"{method} {path} ({ep.id}): {problem}")
            rec.status = 400
            return 400, {"message": f"bad request data: {problem}"}
        if method != "GET" and self.role != "Admin":
            rec.status = 403
            return 403, {"message": "You'll need additional permissions to perform this action."}
        status, reply = getattr(self, f"_{ep.id}")(m.groupdict().get("uid"), body)
        rec.status = status
        return status, reply

    @staticmethod
    def _check_body(ep: Endpoint, body: Any) -> str | None:
        if ep.method == "GET":
            return None
        if not isinstance(body, dict):
            return "body is not a JSON object"
        missing = [k for k in ep.required_body if body.get(k) in (None, "")]
        if missing:
            return f"missing required field(s) {missing}"
        if ep.one_of_body and not any(body.get(k) for k in ep.one_of_body):
            return f"needs one of {list(ep.one_of_body)}"
        dash = body.get("dashboard")
        if ep.required_dashboard and (not isinstance(dash, dict) or any(not dash.get(k)
                                                                        for k in ep.required_dashboard)):
            return f"dashboard must have {list(ep.required_dashboard)}"
        return None

    def _id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id - 1

    # ---- endpoints (named after the spec ids) ----------------------------------------------------------
    def _health(self, _uid: str | None, _body: Any) -> tuple[int, Any]:
        return 200, {"commit": "standin", "database": "ok", "version": self.version}

    def _datasource_view(self, ds: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in ds.items() if k != "secureJsonData"}
        view["secureJsonFields"] = dict.fromkeys(ds.get("secureJsonData") or {}, True)
        return view

    def _datasource_get_by_uid(self, uid: str | None, _body: Any) -> tuple[int, Any]:
        ds = self.state.datasources.get(uid or "")
        return (200, self._datasource_view(ds)) if ds else (404, {"message": "Data source not found"})

    def _datasource_create(self, _uid: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("name") or body["type"]
        if body.get("uid") in self.state.datasources or any(d["name"] == name for d in self.state.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        ds = {**body, "name": name, "id": self._id(), "orgId": 1, "version": 1, "readOnly": False}
        ds.setdefault("uid", f"auto{ds['id']}")
        self.state.datasources[ds["uid"]] = ds
        return 200, {"datasource": self._datasource_view(ds), "id": ds["id"], "message": "Datasource added",
                     "name": name}

    def _datasource_update_by_uid(self, uid: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        old = self.state.datasources.get(uid or "")
        if old is None:
            return 404, {"message": "Data source not found"}
        ds = {**old, **body, "id": old["id"], "uid": body.get("uid") or old["uid"], "version": old["version"] + 1}
        self.state.datasources[ds["uid"]] = ds
        return 200, {"datasource": self._datasource_view(ds), "id": ds["id"], "message": "Datasource updated",
                     "name": ds["name"]}

    def _folder_get(self, uid: str | None, _body: Any) -> tuple[int, Any]:
        f = self.state.folders.get(uid or "")
        return (200, f) if f else (404, {"message": "folder not found", "status": "not-found"})

    def _folder_create(self, _uid: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        uid = body.get("uid") or f"auto{self.state.next_id}"
        if uid in self.state.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        f = {"id": self._id(), "uid": uid, "title": body["title"], "url": f"/dashboards/f/{uid}/", "version": 1}
        self.state.folders[uid] = f
        return 200, f

    def _folder_update(self, uid: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        f = self.state.folders.get(uid or "")
        if f is None:
            return 404, {"message": "folder not found", "status": "not-found"}
        if not body.get("overwrite") and body.get("version") != f["version"]:
            return 412, {"message": "The folder has been changed by someone else", "status": "version-mismatch"}
        f.update(title=body["title"], version=f["version"] + 1)
        return 200, f

    def _dashboard_save(self, _uid: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        dash = dict(body["dashboard"])
        folder = body.get("folderUid") or ""
        if folder and folder not in self.state.folders:
            return 400, {"message": "folder not found", "status": "not-found"}
        uid = dash.get("uid") or f"auto{self.state.next_id}"
        old = self.state.dashboards.get(uid)
        if old and not body.get("overwrite") and dash.get("version") != old["dashboard"]["version"]:
            return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
        dash_id = old["dashboard"]["id"] if old else self._id()
        dash.update(uid=uid, id=dash_id, version=old["dashboard"]["version"] + 1 if old else 1)
        self.state.dashboards[uid] = {"dashboard": dash, "folderUid": folder, "message": body.get("message", "")}
        return 200, {"id": dash_id, "uid": uid, "url": f"/d/{uid}/x", "status": "success",
                     "version": dash["version"], "slug": "x"}

    def _dashboard_get_by_uid(self, uid: str | None, _body: Any) -> tuple[int, Any]:
        d = self.state.dashboards.get(uid or "")
        if d is None:
            return 404, {"message": "Dashboard not found"}
        return 200, {"dashboard": d["dashboard"], "meta": {"folderUid": d["folderUid"], "url": f"/d/{uid}/x"}}
