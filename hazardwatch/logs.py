"""Logging for every hazardwatch process: plain lines for a person at a terminal, JSON lines for a log pipeline.

HW_LOG_FORMAT=json (set in the shipped containers) makes each record one JSON object per line: ts (UTC, ms),
level, service, logger, msg, and any structured fields passed with `extra=` (counters, ports, ids), so Loki or
Elasticsearch can filter on them without parsing the message. The text format prints only the message, which
already begins with the service name ("bridge: subscribed ..."), as it always has.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson

from hazardwatch.config import ConfigError

FORMATS = ("text", "json")
# Attributes every LogRecord has; anything else on a record came from `extra=` and is a structured field.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime", "taskName"}


def log_format() -> str:
    fmt = os.environ.get("HW_LOG_FORMAT", "text").strip().lower() or "text"
    if fmt not in FORMATS:
        raise ConfigError(f"environment variable HW_LOG_FORMAT={fmt!r}: use 'text' or 'json'")
    return fmt


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "hazardwatch"):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "service": self.service, "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        # default=str: a stray non-JSON value in `extra` must never cost us the log line itself.
        return orjson.dumps(doc, default=str).decode()


def dict_config(service: str, level: str | int = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig for this process; Faust takes it as `logging_config`, so its own loggers
    (consumer, rebalancing, tables) come out in the same format as ours."""
    fmt = log_format()
    formatter: dict[str, Any] = ({"()": JsonFormatter, "service": service} if fmt == "json"
                                 else {"format": "%(message)s"})
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"hw": formatter},
            "handlers": {"hw": {"class": "logging.StreamHandler", "formatter": "hw", "stream": "ext://sys.stdout"},
                         "own": {"class": "logging.StreamHandler", "formatter": "hw", "stream": "ext://sys.stdout"}},
            "root": {"level": level, "handlers": ["hw"]},
            # Our own messages are operational facts (started, stats, retries): keep them at INFO whatever level
            # the noisier libraries run at. A handler of their own, because Faust sets the root handler's level
            # to its --loglevel after configuring logging.
            "loggers": {"hazardwatch": {"level": "INFO", "handlers": ["own"], "propagate": False}}}


def setup(service: str, level: str | int = "WARNING") -> None:
    import logging.config

    logging.config.dictConfig(dict_config(service, level))


def get_logger(name: str) -> logging.Logger:
    """Our loggers live under `hazardwatch.` so one config line sets their level."""
    return logging.getLogger(f"hazardwatch.{name}")
