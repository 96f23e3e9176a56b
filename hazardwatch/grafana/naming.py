"""Stable uids and bilingual titles, derived from registry ids and never random: re-provisioning (by API or by
files) updates the same folders and dashboards in place, and bookmarks on the wall screens keep working.

Folders: ``hw-city`` for the city, ``hw-<district id lower-case>`` per district (``hw-d01``).
Dashboards: in the city folder ``hw-city-overview``, ``hw-source-detail``, ``hw-sensor-health``; in a
district folder the same three limited to the district: ``hw-d01-overview``, ``hw-d01-source-detail``,
``hw-d01-sensor-health``. Grafana allows at most 40 characters in a uid; ``check_uid`` enforces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hazardwatch.registry import Registry

CITY_FOLDER_UID = "hw-city"
_UID_OK = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")


def check_uid(uid: str) -> str:
    if not _UID_OK.match(uid):
        raise ValueError(f"Grafana uid {uid!r} must be 1..40 letters, digits, '-' or '_'; shorten the registry id")
    return uid


def district_folder_uid(district_id: str) -> str:
    return check_uid(f"hw-{district_id.lower()}")


@dataclass(frozen=True)
class Scope:
    """What one set of dashboards covers: the whole city, or one district (its folder, its sources)."""

    folder_uid: str
    folder_title: str
    district: str | None  # None: the whole city
    title_zh: str
    title_en: str
    source_ids: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return "hw" if self.district is None else self.folder_uid

    def uid(self, what: str) -> str:
        """Dashboard uid: 'overview' -> hw-city-overview / hw-d01-overview; others hw-<what> / hw-d01-<what>."""
        if self.district is None:
            return check_uid("hw-city-overview" if what == "overview" else f"hw-{what}")
        return check_uid(f"{self.folder_uid}-{what}")


def scopes(registry: Registry) -> list[Scope]:
    """The city scope first, then one per district in registry order (stable output order)."""
    city_zh, city_en = registry.city_zh or "全市", registry.city_en or "City"
    out = [Scope(CITY_FOLDER_UID, f"{city_zh} {city_en}", None, city_zh, city_en, tuple(registry.sources))]
    for d in registry.districts.values():
        srcs = tuple(sid for sid, s in registry.sources.items() if registry.enterprises[s.enterprise].district == d.id)
        out.append(Scope(district_folder_uid(d.id), f"{d.name_zh} {d.name_en}", d.id, d.name_zh, d.name_en, srcs))
    return out
