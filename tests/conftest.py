from __future__ import annotations

import pytest

from hazardwatch.config import PROJECT_ROOT, Settings, load_settings
from hazardwatch.registry import Registry, load_registry

EXAMPLE = PROJECT_ROOT / "deploy" / "examples" / "city-registry.yaml"


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry(EXAMPLE)


@pytest.fixture()
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HW_REGISTRY", str(EXAMPLE))
    return load_settings()
