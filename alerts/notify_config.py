"""The notification config (deploy/examples/notify.yaml): where each channel sends, and how hard it tries.

Every problem names the file, the line, the key path and the fix, then all problems are raised together, so a
plant engineer fixes the file in one pass, at start-up, not in the middle of a red alert.

Credentials are never written in the YAML. A credential is named by ``<name>_env`` (an environment variable) and/or
``<name>_file`` (a file holding only the value). The environment variable wins when it is set and non-empty;
otherwise the file is read. A relative file path resolves against the secrets directory, which is
``settings.secrets_dir`` ($HW_HOME/secrets, where `hazardwatch services up` writes credentials) unless the YAML's
top-level ``secrets_dir:`` names another one (itself relative to the config file's directory). Absolute paths and
``~`` are used as given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hazardwatch.yamllines import LineDict, LineLoader

CHANNELS = ("webhook", "email", "sms", "wecom", "dingtalk")
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send"
# Keys that would hold a credential itself: refused, so a secret never lands in git with the config.
_CREDENTIAL_KEYS = ("secret", "key", "token", "access_token", "password", "api_key", "apikey")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class NotifyConfigError(ValueError):
    """The notification config is wrong; ``problems`` lists every problem, each with where and how to fix it."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the notification config:\n  "
                         + "\n  ".join(problems))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt n waits min(cap_s, base_s * factor**(n-1)); with jitter, a uniform share of it."""

    attempts: int = 4
    base_s: float = 2.0
    factor: float = 2.0
    cap_s: float = 60.0
    jitter: bool = True


@dataclass(frozen=True)
class WebhookEndpoint:
    name: str
    url: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class EmailConfig:
    host: str
    port: int
    sender: str
    security: str = "none"  # none | starttls | ssl
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    helo: str = "localhost"


@dataclass(frozen=True)
class SmsConfig:
    url: str
    sign: str
    api_key: str = field(repr=False)
    max_chars: int = 300


@dataclass(frozen=True)
class DingtalkRobot:
    token: str = field(repr=False)
    secret: str = field(repr=False)


@dataclass(frozen=True)
class NotifyConfig:
    path: str = ""
    timeout_s: float = 10.0
    webhook: dict[str, WebhookEndpoint] = field(default_factory=dict)
    email: EmailConfig | None = None
    sms: SmsConfig | None = None
    wecom_url: str = WECOM_URL
    wecom: dict[str, str] = field(default_factory=dict, repr=False)  # robot name -> key
    dingtalk_url: str = DINGTALK_URL
    dingtalk: dict[str, DingtalkRobot] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fallback: dict[str, str] = field(default_factory=dict)

    def configured(self) -> set[str]:
        """The channels that can send: a section with at least one endpoint/robot."""
        have = {"webhook": bool(self.webhook), "email": self.email is not None, "sms": self.sms is not None,
                "wecom": bool(self.wecom), "dingtalk": bool(self.dingtalk)}
        return {name for name, ok in have.items() if ok}




def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class _Checker:
    def __init__(self, path: Path, environ: Mapping[str, str], secrets_dir: Path, require_secrets: bool):
        self.path, self.environ, self.secrets_dir = path, environ, secrets_dir
        self.require_secrets = require_secrets
        self.problems: list[str] = []

    def fail(self, node: Any, key: str | None, where: str, msg: str) -> None:
        line = 0
        if isinstance(node, LineDict):
            line = node.key_lines.get(key, node.line) if key is not None else node.line
        loc = f"{self.path} line {line}" if line else str(self.path)
        self.problems.append(f"{loc}: {where}: {msg}" if where else f"{loc}: {msg}")

    def section(self, node: Any, key: str, where: str) -> LineDict | None:
        value = node.get(key) if isinstance(node, dict) else None
        if value is None:
            return None
        if not isinstance(value, LineDict):
            self.fail(node, key, where, f"is {value!r}; it must be a mapping of `name: value` lines (indent them)")
            return None
        return value

    def keys(self, node: LineDict, where: str, allowed: tuple[str, ...]) -> None:
        for key in node:
            if key in _CREDENTIAL_KEYS:
                self.fail(node, key, _join(where, key), f"a credential must not be written in this file; remove it "
                          f"and use `{key}_env: HW_...` (an environment variable) or `{key}_file: <file>`")
            elif key not in allowed:
                self.fail(node, key, _join(where, key), f"unknown key; use one of {', '.join(allowed)}")

    def string(self, node: LineDict, key: str, where: str, default: str | None = None) -> str | None:
        value = node.get(key, default)
        if key not in node and default is None:
            self.fail(node, None, _join(where, key), f"missing; add `{key}:`")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(node, key, _join(where, key), f"{value!r} is not a text value; write it in quotes")
            return None
        return value.strip()

    def url(self, node: LineDict, key: str, where: str, default: str | None = None) -> str | None:
        value = self.string(node, key, where, default)
        if value is not None and not re.fullmatch(r"https?://[^\s?#]+", value):
            self.fail(node, key, _join(where, key), f"{value!r} is not an http(s) URL without a query; write "
                      "e.g. https://host/path and put any key or token in a *_env/*_file credential")
            return None
        return value

    def number(self, node: LineDict, key: str, where: str, default: float, lo: float, hi: float,
               integer: bool = False) -> float:
        value = node.get(key, default)
        kinds = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not lo <= value <= hi:
            kind = "an integer" if integer else "a number"
            what = "is not a port" if key == "port" else "is out of range" if isinstance(value, kinds) \
                else f"is not {kind}"
            self.fail(node, key, _join(where, key), f"{value!r} {what}; use {kind} {lo:g}..{hi:g}")
            return default
        return value

    def secret(self, node: LineDict, name: str, where: str, hint: str) -> str | None:
        """Resolve ``<name>_env`` / ``<name>_file``; None (with a problem) when it cannot be found."""
        env_key, file_key = f"{name}_env", f"{name}_file"
        env, file = node.get(env_key), node.get(file_key)
        if env is None and file is None:
            self.fail(node, None, _join(where, env_key), f"missing {hint}; add `{env_key}: HW_...` (an environment "
                      f"variable) or `{file_key}: <file under {self.secrets_dir}>`")
            return None
        if env is not None and (not isinstance(env, str) or not _ENV_NAME.fullmatch(env)):
            self.fail(node, env_key, _join(where, env_key), f"{env!r} is not an environment variable name; use "
                      "letters, digits and _ like HW_WECOM_KEY_E01 (the name, never the value)")
            return None
        if file is not None and (not isinstance(file, str) or not file.strip()):
            self.fail(node, file_key, _join(where, file_key), f"{file!r} is not a file name; write a path")
            return None
        if env and self.environ.get(env):
            return self.environ[env].strip()
        tried = [f"environment variable {env} is not set"] if env else []
        path = None
        if file:
            path = Path(file).expanduser()
            path = path if path.is_absolute() else self.secrets_dir / path
            try:
                value = path.read_text(encoding="utf-8").strip()
                if value:
                    return value
                tried.append(f"file {path} is empty")
            except OSError as exc:
                tried.append(f"file {path} cannot be read ({exc.strerror or exc})")
        if not self.require_secrets:
            return ""
        fixes = ([f"export {env}=<{hint}>"] if env else []) + ([f"write it alone into {path} (chmod 600)"]
                                                                if path else [])
        self.fail(node, env_key if env else file_key, _join(where, env_key if env else file_key),
                  f"no {hint}: {' and '.join(tried)}; {' or '.join(fixes)}")
        return None


def load_notify_config(path: str | Path, secrets_dir: Path | None = None, *,
                       environ: Mapping[str, str] | None = None, require_secrets: bool = True) -> NotifyConfig:
    """Load and check the notification config; raise NotifyConfigError listing every problem.

    ``secrets_dir`` defaults to ``load_settings().secrets_dir``; ``environ`` to ``os.environ``. With
    ``require_secrets=False`` (a syntax check in CI) missing credentials are not problems and resolve to "".
    """
    path = Path(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=LineLoader)
    except OSError as exc:
        raise NotifyConfigError(path, [f"{path}: cannot read it ({exc.strerror or exc}); set HW_NOTIFY_CONFIG "
                                       "to your notification config or copy deploy/examples/notify.yaml"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path} line {mark.line + 1}" if mark else str(path)
        raise NotifyConfigError(path, [f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the "
                                       "syntax (indent with spaces, quote text containing ':' or '#')"]) from None
    if not isinstance(doc, LineDict):
        raise NotifyConfigError(path, [f"{path}: the top level must be a mapping with webhook, email, sms, "
                                       "wecom, dingtalk, retry and fallback sections"])
    if secrets_dir is None:
        from hazardwatch.config import load_settings

        secrets_dir = load_settings().secrets_dir
    if isinstance(doc.get("secrets_dir"), str):
        secrets_dir = (path.parent / Path(doc["secrets_dir"]).expanduser()).resolve()
    c = _Checker(path, os.environ if environ is None else environ, secrets_dir, require_secrets)
    c.keys(doc, "", ("secrets_dir", "timeout_s", *CHANNELS, "retry", "fallback"))
    if "secrets_dir" in doc and not isinstance(doc["secrets_dir"], str):
        c.fail(doc, "secrets_dir", "secrets_dir", f"{doc['secrets_dir']!r} is not a directory path; write one")
    cfg: dict[str, Any] = {"path": str(path),
                           "timeout_s": float(c.number(doc, "timeout_s", "", 10.0, 0.1, 300))}
    cfg.update(_webhook(c, doc))
    cfg.update(_email(c, doc))
    cfg.update(_sms(c, doc))
    cfg.update(_robots(c, doc))
    cfg["retry"] = _retry(c, doc)
    # Judge the fallback map by the sections written, so one bad section does not cascade into more problems.
    result = NotifyConfig(**{**cfg, "fallback": _fallback(c, doc, {ch for ch in CHANNELS if ch in doc})})
    if not result.configured() and not c.problems:
        c.fail(doc, None, "", "no channel configured; add at least one of " + ", ".join(CHANNELS))
    if c.problems:
        raise NotifyConfigError(path, c.problems)
    return result


def _webhook(c: _Checker, doc: LineDict) -> dict[str, Any]:
    sec = c.section(doc, "webhook", "webhook")
    if sec is None:
        return {}
    c.keys(sec, "webhook", ("endpoints",))
    endpoints: dict[str, WebhookEndpoint] = {}
    listed = c.section(sec, "endpoints", "webhook.endpoints")
    if not listed:
        c.fail(sec, "endpoints", "webhook.endpoints", "no endpoints; add `endpoints:` with `<name>: {url: ..., "
               "secret_env: ...}` or remove the webhook section")
    for name, ep in (listed or {}).items():
        w = f"webhook.endpoints.{name}"
        if not isinstance(ep, LineDict):
            c.fail(sec["endpoints"], name, w, "must be a mapping with url and secret_env/secret_file")
            continue
        c.keys(ep, w, ("url", "secret_env", "secret_file"))
        url = c.url(ep, "url", w)
        secret = c.secret(ep, "secret", w, "HMAC secret shared with the receiver")
        if url and secret is not None:
            endpoints[str(name)] = WebhookEndpoint(str(name), url, secret)
    return {"webhook": endpoints}


def _email(c: _Checker, doc: LineDict) -> dict[str, Any]:
    sec = c.section(doc, "email", "email")
    if sec is None:
        return {}
    c.keys(sec, "email", ("host", "port", "security", "sender", "username", "username_env", "username_file",
                          "password_env", "password_file", "helo"))
    host, sender = c.string(sec, "host", "email", "127.0.0.1"), c.string(sec, "sender", "email")
    port = int(c.number(sec, "port", "email", 25, 1, 65535, integer=True))
    security = sec.get("security", "none")
    if security not in ("none", "starttls", "ssl"):
        c.fail(sec, "security", "email.security", f"{security!r} is not known; use none, starttls or ssl")
    if sender and "@" not in sender:
        c.fail(sec, "sender", "email.sender", f"{sender!r} is not an e-mail address; write e.g. "
               "\"hazardwatch <alerts@city.example>\"")
    username = None
    if "username" in sec:
        username = c.string(sec, "username", "email")
    elif "username_env" in sec or "username_file" in sec:
        username = c.secret(sec, "username", "email", "SMTP user name")
    password = None
    if "password_env" in sec or "password_file" in sec:
        password = c.secret(sec, "password", "email", "SMTP password")
        if username is None:
            c.fail(sec, None, "email.username", "missing; a password needs `username:` (or username_env)")
    elif username is not None:
        c.fail(sec, None, "email.password_env", "missing; a username needs `password_env: HW_SMTP_PASSWORD` "
               "or `password_file: smtp-password`")
    if not (host and sender):
        return {}
    return {"email": EmailConfig(host, port, sender, security if isinstance(security, str) else "none",
                                 username, password, c.string(sec, "helo", "email", "localhost") or "localhost")}


def _sms(c: _Checker, doc: LineDict) -> dict[str, Any]:
    sec = c.section(doc, "sms", "sms")
    if sec is None:
        return {}
    c.keys(sec, "sms", ("url", "sign", "api_key_env", "api_key_file", "max_chars"))
    url, sign = c.url(sec, "url", "sms"), c.string(sec, "sign", "sms")
    api_key = c.secret(sec, "api_key", "sms", "SMS gateway API key")
    max_chars = int(c.number(sec, "max_chars", "sms", 300, 20, 1000, integer=True))
    if url and sign and api_key is not None:
        return {"sms": SmsConfig(url, sign, api_key, max_chars)}
    return {}


def _robots(c: _Checker, doc: LineDict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for channel, default in (("wecom", WECOM_URL), ("dingtalk", DINGTALK_URL)):
        sec = c.section(doc, channel, channel)
        if sec is None:
            continue
        c.keys(sec, channel, ("url", "robots"))
        out[f"{channel}_url"] = c.url(sec, "url", channel, default) or default
        robots: dict[str, Any] = {}
        listed = c.section(sec, "robots", f"{channel}.robots")
        if not listed:
            c.fail(sec, "robots", f"{channel}.robots", f"no robots; add `robots:` with one entry per group robot "
                   f"or remove the {channel} section")
        for name, robot in (listed or {}).items():
            w = f"{channel}.robots.{name}"
            if not isinstance(robot, LineDict):
                c.fail(sec["robots"], name, w, "must be a mapping of credential names (see the example file)")
                continue
            if channel == "wecom":
                c.keys(robot, w, ("key_env", "key_file"))
                key = c.secret(robot, "key", w, "WeCom robot key")
                if key is not None:
                    robots[str(name)] = key
            else:
                c.keys(robot, w, ("token_env", "token_file", "secret_env", "secret_file"))
                token = c.secret(robot, "token", w, "DingTalk access_token")
                secret = c.secret(robot, "secret", w, "DingTalk 加签 secret SEC...")
                if token is not None and secret is not None:
                    robots[str(name)] = DingtalkRobot(token, secret)
        out[channel] = robots
    return out


def _retry(c: _Checker, doc: LineDict) -> RetryPolicy:
    sec = c.section(doc, "retry", "retry")
    if sec is None:
        return RetryPolicy()
    c.keys(sec, "retry", ("attempts", "base_s", "factor", "cap_s", "jitter"))
    jitter = sec.get("jitter", True)
    if not isinstance(jitter, bool):
        c.fail(sec, "jitter", "retry.jitter", f"{jitter!r} is not true/false; write true or false")
        jitter = True
    policy = RetryPolicy(attempts=int(c.number(sec, "attempts", "retry", 4, 1, 20, integer=True)),
                         base_s=float(c.number(sec, "base_s", "retry", 2.0, 0.01, 600)),
                         factor=float(c.number(sec, "factor", "retry", 2.0, 1, 10)),
                         cap_s=float(c.number(sec, "cap_s", "retry", 60.0, 0.01, 3600)), jitter=jitter)
    if policy.cap_s < policy.base_s:
        c.fail(sec, "cap_s", "retry.cap_s", f"{policy.cap_s:g} is below base_s {policy.base_s:g}; raise it")
    return policy


def _fallback(c: _Checker, doc: LineDict, declared: set[str]) -> dict[str, str]:
    sec = c.section(doc, "fallback", "fallback")
    if sec is None:
        return {}
    out: dict[str, str] = {}
    for src, dst in sec.items():
        w = f"fallback.{src}"
        if src not in CHANNELS:
            c.fail(sec, src, w, f"{src!r} is not a channel; use one of {', '.join(CHANNELS)}")
        elif dst not in CHANNELS or dst == src:
            c.fail(sec, src, w, f"{dst!r} is not another channel; use one of {', '.join(CHANNELS)}")
        elif dst not in declared:
            c.fail(sec, src, w, f"falls back to {dst}, which has no section above; configure {dst} or remove this")
        else:
            out[src] = dst
    return out
