"""Integration fixtures: the real Mosquitto, Kafka and InfluxDB started by `hazardwatch services up`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hazardwatch import services
from hazardwatch.config import Settings, load_settings
from hazardwatch.sandbox import Sandbox


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    s = load_settings()
    services.up(s)
    return s


@pytest.fixture()
def stack_factory(base_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(**extra: str) -> Sandbox:
        st = Sandbox(tmp_path, **extra)
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()
