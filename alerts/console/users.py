"""Console users from a YAML file: roles, scopes, permissions and scrypt password hashes.

The file is edited by the bureau's administrator, so loading collects every problem and names the file, the
line, the key and the fix. Scope is the one rule the whole console leans on: a city user sees everything, a
district user the enterprises of its district, an enterprise user its own sources; everything unknown is hidden.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hazardwatch.registry import Registry
from hazardwatch.yamllines import LineDict, LineLoader

ROLES = ("city", "district", "enterprise", "viewer")
PERMISSIONS = ("ack", "comment", "shelve", "maintain")
DEFAULT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "city": PERMISSIONS, "district": PERMISSIONS, "enterprise": PERMISSIONS, "viewer": (),
}
USERS_ENV = "HW_CONSOLE_USERS"
MIN_PASSWORD = 10
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# scrypt cost: about 50 ms and 16 MiB per check, so a stolen file is slow to crack and a login stays quick.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


@dataclass(frozen=True)
class User:
    name: str
    display_name: str
    role: str
    scope: str | None  # None (city, city-wide viewer), a district id or an enterprise id
    permissions: frozenset[str]
    password_hash: str


class UsersError(ValueError):
    """The users file is invalid; ``problems`` lists every message."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n  - ".join([f"console users {path} has {len(problems)} problem(s):", *problems]))


def users_path(home: Path) -> Path:
    """HW_CONSOLE_USERS, else <HW_HOME>/console-users.yaml."""
    return Path(os.environ.get(USERS_ENV) or home / "console-users.yaml")


# ---- passwords --------------------------------------------------------------------------------------------
def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(pw: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pw.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    # Bounds keep a hand-edited hash from making every login burn seconds or gigabytes.
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        return None
    if 128 * r * n * 2 > _MAXMEM:
        return None
    return n, r, p, salt, digest


def check_password(pw: str, stored: str) -> bool:
    parsed = _parse_hash(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    got = hashlib.scrypt(pw.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(digest))
    return hmac.compare_digest(got, digest)


# A real hash to check against when the user name is unknown, so the reply takes as long as for a known user.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_login(users: Mapping[str, User], name: str, pw: str) -> User | None:
    user = users.get(name)
    ok = check_password(pw, user.password_hash if user else _DUMMY_HASH)
    return user if ok and user is not None else None




def _where(path: Path, node: Any, key: str | None = None) -> str:
    line = 0
    if isinstance(node, LineDict):
        line = node.key_lines.get(key, node.line) if key else node.line
    return f"{path.name}:{line}" if line else path.name


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsersError(path, [f"{path.name}: file not found; run `hazardwatch console init` to create it or set "
                                f"{USERS_ENV} to your users file"]) from None
    try:
        return yaml.load(text, Loader=LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        problem = getattr(exc, "problem", exc)
        raise UsersError(path, [f"{where} is not valid YAML ({problem}); fix the syntax"]) from None


def load_users(path: str | Path, registry: Registry) -> dict[str, User]:
    path = Path(path)
    doc = _read(path)
    problems: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("users"), list):
        raise UsersError(path, [f"{path.name}: the top level must be a mapping with `users:` (a list of users)"])
    out: dict[str, User] = {}
    for i, u in enumerate(doc["users"]):
        user = _user(path, registry, u, i, problems)
        if user is None:
            continue
        if user.name in out:
            problems.append(f"{_where(path, u, 'name')} users[{i}].name: {user.name!r} is listed twice; "
                            "give each person one entry")
            continue
        out[user.name] = user
    if problems:
        raise UsersError(path, problems)
    return out


def _user(path: Path, reg: Registry, u: Any, i: int, problems: list[str]) -> User | None:
    w = f"users[{i}]"
    if not isinstance(u, dict):
        problems.append(f"{_where(path, u)} {w}: must be a mapping with name, role, scope, password_hash")
        return None
    bad = len(problems)
    name = u.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{_where(path, u, 'name')} {w}.name: {name!r} is not a user name; use lower-case letters, "
                        "digits, '.', '_' or '-' (e.g. e01-operator)")
        name = None
    w = f"users[{name or i}]"
    role = u.get("role")
    if role not in ROLES:
        problems.append(f"{_where(path, u, 'role')} {w}.role: unknown role {role!r}; use one of {list(ROLES)}")
    scope = u.get("scope")
    if role in ROLES:
        fix = _scope_problem(reg, role, scope)
        if fix:
            problems.append(f"{_where(path, u, 'scope')} {w}.scope: {fix}")
    perms = u.get("permissions", list(DEFAULT_PERMISSIONS.get(role, ())))
    if not isinstance(perms, list) or any(p not in PERMISSIONS for p in perms):
        problems.append(f"{_where(path, u, 'permissions')} {w}.permissions: {perms!r}; list some of "
                        f"{list(PERMISSIONS)} or leave it out for the role's defaults")
    pw_hash = u.get("password_hash")
    if not pw_hash:
        problems.append(f"{_where(path, u, 'password_hash' if 'password_hash' in u else None)} {w}.password_hash: "
                        f"missing; run: hazardwatch console passwd {name or '<user>'}")
    elif _parse_hash(pw_hash) is None:
        problems.append(f"{_where(path, u, 'password_hash')} {w}.password_hash: not a scrypt hash this console "
                        f"writes; run: hazardwatch console passwd {name or '<user>'}")
    display = u.get("display_name", name)
    if not isinstance(display, str):
        problems.append(f"{_where(path, u, 'display_name')} {w}.display_name: must be text")
    if len(problems) > bad:
        return None
    return User(str(name), str(display), str(role), scope, frozenset(perms), str(pw_hash))


def _scope_problem(reg: Registry, role: str, scope: Any) -> str | None:
    if role == "city":
        return None if scope is None else f"{scope!r}: a city user sees everything; write `scope: null`"
    if role == "district":
        return None if scope in reg.districts else (f"{scope!r} is not a district of the registry; use one of "
                                                    f"{sorted(reg.districts)}")
    if role == "enterprise":
        return None if scope in reg.enterprises else (f"{scope!r} is not an enterprise of the registry; use one of "
                                                      f"{sorted(reg.enterprises)}")
    if scope is None or scope in reg.districts or scope in reg.enterprises:
        return None
    return f"{scope!r} is neither a district nor an enterprise of the registry; use null (whole city) or an id"


# ---- writing ------------------------------------------------------------------------------------------------
_HEADER = ("# hazardwatch duty console users. Roles: city | district | enterprise | viewer; scope: null, a district\n"
           "# id or an enterprise id. Set a password with: hazardwatch console passwd <user>\n")


def _write(path: Path, users: list[dict[str, Any]]) -> None:
    """Atomic replace with mode 0600: the hashes are not public even though they are slow to crack."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    body = _HEADER + yaml.safe_dump({"users": users}, allow_unicode=True, sort_keys=False)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, path)


def _check_new_password(pw: str) -> None:
    if len(pw) < MIN_PASSWORD:
        raise ValueError(f"password too short: use at least {MIN_PASSWORD} characters / 密码至少 {MIN_PASSWORD} 位")


def set_password(path: str | Path, user: str, pw: str) -> None:
    """Set one user's hash; every other entry is kept as it is (comments are not, YAML cannot keep them)."""
    path = Path(path)
    _check_new_password(pw)
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    entries = doc.get("users") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise UsersError(path, [f"{path.name}: no `users:` list; run `hazardwatch console init` first"])
    for e in entries:
        if isinstance(e, dict) and e.get("name") == user:
            e["password_hash"] = hash_password(pw)
            _write(path, entries)
            return
    names = [e.get("name") for e in entries if isinstance(e, dict)]
    raise UsersError(path, [f"{path.name}: no user {user!r}; add it under `users:` first (known: {names})"])


def init_users(path: str | Path, registry: Registry, overwrite: bool = False) -> dict[str, str]:
    """A starting users file: city, one per district, one per enterprise, a wall screen. Returns the passwords."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; edit it, or use `hazardwatch console passwd <user>` for passwords")
    plan: list[tuple[str, str, str, str | None]] = [
        ("city-duty", f"{registry.city_zh}应急指挥中心值班员 {registry.city_en} duty officer", "city", None)]
    plan += [(f"{d.id.lower()}-duty", f"{d.name_zh}应急管理局值班员 {d.name_en} duty officer", "district", d.id)
             for d in registry.districts.values()]
    plan += [(f"{e.id.lower()}-operator", f"{e.name_zh}中控室 {e.name_en} control room", "enterprise", e.id)
             for e in registry.enterprises.values()]
    plan.append(("wall-screen", "指挥中心大屏 command centre wall screen", "viewer", None))
    passwords: dict[str, str] = {}
    entries: list[dict[str, Any]] = []
    for name, display, role, scope in plan:
        pw = secrets.token_urlsafe(12)
        passwords[name] = pw
        entries.append({"name": name, "display_name": display, "role": role, "scope": scope,
                        "permissions": list(DEFAULT_PERMISSIONS[role]), "password_hash": hash_password(pw)})
    _write(path, entries)
    return passwords


def save_passwords(directory: Path, passwords: Mapping[str, str]) -> list[Path]:
    """One 0600 file per user (e.g. <secrets>/console/city-duty) for handing out; delete them once handed out."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = []
    for name, pw in passwords.items():
        p = directory / name
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pw + "\n")
        out.append(p)
    return out


# ---- scope ----------------------------------------------------------------------------------------------
def visible_enterprises(user: User, registry: Registry) -> frozenset[str] | None:
    """The enterprise ids the user may see; None means the whole city. Unknown scopes see nothing (fail closed)."""
    if user.role == "city" or (user.role == "viewer" and user.scope is None):
        return None
    if user.scope in registry.districts and user.role in ("district", "viewer"):
        return frozenset(e.id for e in registry.enterprises.values() if e.district == user.scope)
    if user.scope in registry.enterprises and user.role in ("enterprise", "viewer"):
        return frozenset((user.scope,))
    return frozenset()


def can_see_enterprise(user: User, registry: Registry, enterprise: str | None) -> bool:
    seen = visible_enterprises(user, registry)
    return seen is None or enterprise in seen


def can_see_district(user: User, registry: Registry, district: str | None) -> bool:
    """The whole district: city users, and users scoped to that very district."""
    return visible_enterprises(user, registry) is None or (user.scope == district and district in registry.districts)


def can_see_source(user: User, registry: Registry, source: str | None) -> bool:
    src = registry.sources.get(source or "")
    return src is not None and can_see_enterprise(user, registry, src.enterprise)


def can_see_sensor(user: User, registry: Registry, sensor: str | None) -> bool:
    s = registry.sensors.get(sensor or "")
    return s is not None and can_see_source(user, registry, s.source)


def can_see_alert(user: User, registry: Registry, item: Mapping[str, Any]) -> bool:
    """A snapshot or an event: judged by its source in the registry; sources the registry no longer knows are
    judged by the enterprise they carry, which only a city-wide user can see when that enterprise is unknown."""
    source = item.get("source")
    if source in registry.sources:
        return can_see_source(user, registry, source)
    return can_see_enterprise(user, registry, item.get("enterprise"))
