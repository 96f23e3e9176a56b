"""Reading a service's ops endpoints the way Prometheus and a kubelet do: plain HTTP GETs."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str) -> tuple[int, bytes]:
    """(status, body); an error status is a result here, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def samples(text: str) -> Samples:
    """{(sample name, sorted labels): value} of a Prometheus text page."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def scrape(base: str) -> Samples:
    code, body = get(f"{base}/metrics")
    assert code == 200, f"{base}/metrics answered {code}"
    return samples(body.decode())
