"""A typed Flux query for grafana-foundation-sdk panels and annotations.

The SDK (11.3.0) has builders for Prometheus, Loki, ... but none for InfluxDB, so this module implements the
SDK's cog protocol for one: ``FluxQuery`` is a ``cog.variants.Dataquery`` (to_json / from_json, the JSON
Grafana's InfluxDB plugin stores in Flux mode: refId, query, datasource) and ``Flux`` its ``Builder``.
``register()`` adds the variant to the SDK runtime, so ``Dashboard.from_json`` decodes our targets back into
``FluxQuery`` (round trips in the contract tests) instead of an untyped bag.

Flux annotations are a normal query target on the annotation (``{"refId", "query"}``: Grafana 11's InfluxDB
plugin in Flux mode uses the standard annotation support), while the SDK types ``AnnotationQuery.target`` as
the built-in Grafana annotation target; ``FluxAnnotationTarget`` subclasses it to carry the Flux query.
"""

from __future__ import annotations

from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

from hazardwatch.grafana import DATASOURCE_TYPE, DATASOURCE_UID


def datasource_ref() -> dashboard.DataSourceRef:
    return dashboard.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class FluxQuery(cogvariants.Dataquery):
    """One Flux query target of a panel (InfluxDB data source in Flux mode)."""

    def __init__(self, ref_id: str = "A", query: str = "", datasource: dashboard.DataSourceRef | None = None,
                 hide: bool | None = None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id, "query": self.query}
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(ref_id=data.get("refId", ""), query=data.get("query", ""),
                   datasource=dashboard.DataSourceRef.from_json(ds) if ds is not None else None,
                   hide=data.get("hide"))


class Flux(cogbuilder.Builder[FluxQuery]):
    """Builder in the SDK's style: ``Flux(text).ref_id("B")``; the data source defaults to ours."""

    def __init__(self, query: str) -> None:
        self._internal = FluxQuery(query=query, datasource=datasource_ref())

    def build(self) -> FluxQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def hide(self, hide: bool) -> Self:
        self._internal.hide = hide
        return self


class FluxAnnotationTarget(dashboard.AnnotationTarget):
    """Annotation target holding a Flux query; columns ``text`` and ``tags`` become the annotation's."""

    def __init__(self, query: str = "", ref_id: str = "Anno") -> None:
        super().__init__()
        self.query = query
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "query": self.query}


class FluxAnnotation(cogbuilder.Builder[dashboard.AnnotationTarget]):
    def __init__(self, query: str) -> None:
        self._internal = FluxAnnotationTarget(query)

    def build(self) -> dashboard.AnnotationTarget:
        return self._internal


def register() -> None:
    """Make the SDK decode targets of ``influxdb`` panels as FluxQuery (idempotent)."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE,
                                                                     from_json_hook=FluxQuery.from_json))


register()
