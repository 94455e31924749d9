"""Prometheus text exposition without a client library: gauges read at scrape time.

A part of the service registers a collector — a function returning
``(name, help, [(labels, value), ...])`` triples — and ``render()`` calls them all when
``/metrics`` is scraped, so nothing is updated on a hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

Sample = tuple[dict[str, str], float | int]
Family = tuple[str, str, str, list[Sample]]  # name, type, help, samples
Collector = Callable[[], Iterable[Family]]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    esc = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
           for k, v in sorted(labels.items()))
    return "{" + ",".join(esc) + "}"


class Metrics:
    """A registry of collectors rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def render(self) -> str:
        lines: list[str] = []
        for collect in self._collectors:
            try:
                families = list(collect())
            except Exception:  # one broken collector must not hide the others
                log.exception("metrics collector failed")
                continue
            for name, kind, help_text, samples in families:
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                lines.extend(f"{name}{_labels(lbl)} {val}" for lbl, val in samples)
        return "\n".join(lines) + "\n"
