"""A small typed model of the Grafana dashboard JSON Prizeflow needs, and its rendering.

Only what the dashboards use: rows of panels laid out left to right on Grafana's 24-column grid, Prometheus
targets through a `datasource` template variable, a `correlation_id` text variable, dashboard links. Rendering
is deterministic (ids and positions from the order of declaration) so the committed JSON can be checked for
staleness byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

GRID_WIDTH = 24
SCHEMA_VERSION = 39  # Grafana 11.x (docker-compose.yml runs grafana/grafana:11.3.0)
DATASOURCE_VARIABLE = "datasource"
LOGS_VARIABLE = "logs"
CORRELATION_VARIABLE = "correlation_id"
TIMELINE_VARIABLE = "timeline_url"
# The compose stack's rewards API (docker-compose.yml publishes it on 127.0.0.1:18002). GET /admin/timeline/<id>
# needs an ops bearer token: in production point the variable at the authenticating proxy in front of the APIs.
DEFAULT_TIMELINE_URL = "http://127.0.0.1:18002/admin/timeline"
PROMETHEUS = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}


class PanelKind(StrEnum):
    TIMESERIES = "timeseries"
    STAT = "stat"
    TABLE = "table"
    TEXT = "text"
    ALERTLIST = "alertlist"


@dataclass(frozen=True)
class Query:
    """One PromQL target. Grafana's `$__rate_interval` is the window of every rate()."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...] = ()
    kind: PanelKind = PanelKind.TIMESERIES
    unit: str = "short"
    width: int = 8
    height: int = 8
    stack: bool = False
    red_above: float | None = None  # a threshold: the value turns red above it (stat panels, graph lines)
    content: str = ""  # markdown of a text panel; Grafana interpolates template variables in it
    alert_filter: str = ""  # label matchers of an alert list panel

    def __post_init__(self) -> None:
        if not 1 <= self.width <= GRID_WIDTH:
            raise ValueError(f"panel {self.title!r}: width {self.width} outside 1..{GRID_WIDTH}")
        needs_queries = self.kind not in (PanelKind.TEXT, PanelKind.ALERTLIST)
        if needs_queries != bool(self.queries):
            raise ValueError(
                f"panel {self.title!r}: a {self.kind} panel {'needs' if needs_queries else 'takes no'} queries"
            )


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Link:
    title: str
    url: str
    tooltip: str


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ()
    links: tuple[Link, ...] = field(default=())

    def targets(self) -> list[tuple[str, str]]:
        """(panel title, PromQL) of every target, for the expression checks."""
        return [(p.title, q.expr) for row in self.rows for p in row.panels for q in p.queries]


def loki_explore_url(logql: str) -> str:
    """A Grafana Explore URL running `logql` on the `logs` datasource variable. The JSON is URL-encoded except
    `$`, `{` and `}`, so that Grafana still interpolates the `${...}` variables in it."""
    panes = {
        "a": {
            "datasource": f"${{{LOGS_VARIABLE}}}",
            "queries": [{"refId": "A", "expr": logql, "datasource": {"type": "loki", "uid": f"${{{LOGS_VARIABLE}}}"}}],
            "range": {"from": "${__from}", "to": "${__to}"},
        }
    }
    return "/explore?schemaVersion=1&orgId=1&panes=" + quote(json.dumps(panes, separators=(",", ":")), safe="${}")


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard's Grafana JSON model."""
    panels: list[dict[str, Any]] = []
    ids = iter(range(1, 10_000))
    y = 0
    for row in dashboard.rows:
        panels.append(_row(next(ids), row.title, y))
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel(next(ids), panel, {"h": panel.height, "w": panel.width, "x": x, "y": y}))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["prizeflow", *dashboard.tags],
        "editable": False,
        "graphTooltip": 1,
        "timezone": "utc",
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "annotations": {"list": [_builtin_annotations()]},
        "templating": {"list": _variables()},
        "links": [
            {
                "title": "Prizeflow dashboards",
                "type": "dashboards",
                "tags": ["prizeflow"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
            },
            *(_link(link) for link in dashboard.links),
        ],
        "panels": panels,
    }


def to_json(dashboard: Dashboard) -> str:
    return json.dumps(render(dashboard), indent=2, ensure_ascii=False) + "\n"


def _variables() -> list[dict[str, Any]]:
    return [
        {
            "name": DATASOURCE_VARIABLE,
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        {
            "name": LOGS_VARIABLE,
            "label": "Logs (Loki)",
            "type": "datasource",
            "query": "loki",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        {
            "name": CORRELATION_VARIABLE,
            "label": "Correlation id",
            "description": "A round, claim, payout or admin action id: the links above open its logs and audit trail",
            "type": "textbox",
            "query": "",
            "current": {"text": "", "value": ""},
            "hide": 0,
            "options": [],
        },
        {
            "name": TIMELINE_VARIABLE,
            "label": "Ops timeline URL",
            "description": "GET /admin/timeline/<correlation id> base URL (ops token; CLI: prizeflow-ops trace)",
            "type": "textbox",
            "query": DEFAULT_TIMELINE_URL,
            "current": {"text": DEFAULT_TIMELINE_URL, "value": DEFAULT_TIMELINE_URL},
            "hide": 2,
            "options": [{"selected": True, "text": DEFAULT_TIMELINE_URL, "value": DEFAULT_TIMELINE_URL}],
        },
    ]


def _builtin_annotations() -> dict[str, Any]:
    return {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


def _link(link: Link) -> dict[str, Any]:
    return {
        "title": link.title,
        "type": "link",
        "url": link.url,
        "tooltip": link.tooltip,
        "icon": "external link",
        "asDropdown": False,
        "includeVars": False,
        "keepTime": False,
        "targetBlank": True,
        "tags": [],
    }


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
        "panels": [],
    }


def _panel(panel_id: int, panel: Panel, grid: dict[str, int]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind.value,
        "title": panel.title,
        "description": panel.description,
        "gridPos": grid,
    }
    if panel.kind is PanelKind.TEXT:
        doc["options"] = {"mode": "markdown", "content": panel.content}
        return doc
    if panel.kind is PanelKind.ALERTLIST:
        doc["options"] = {
            "viewMode": "list",
            "groupMode": "default",
            "groupBy": [],
            "maxItems": 20,
            "sortOrder": 1,
            "dashboardAlerts": False,
            "alertName": "",
            "alertInstanceLabelFilter": panel.alert_filter,
            "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False, "error": True},
            "showInstances": True,
        }
        return doc
    doc["datasource"] = PROMETHEUS
    doc["targets"] = [_target(chr(ord("A") + i), q) for i, q in enumerate(panel.queries)]
    doc["fieldConfig"] = {"defaults": _field_defaults(panel), "overrides": []}
    doc["options"] = _options(panel)
    return doc


def _target(ref_id: str, query: Query) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "datasource": PROMETHEUS,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "instant": query.instant,
    }


def _field_defaults(panel: Panel) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if panel.red_above is not None:
        steps.append({"color": "red", "value": panel.red_above})
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "color": {"mode": "thresholds" if panel.kind is PanelKind.STAT else "palette-classic"},
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    if panel.kind is PanelKind.TIMESERIES:
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if panel.red_above is not None else "off"},
        }
    return defaults


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind is PanelKind.STAT:
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    if panel.kind is PanelKind.TABLE:
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return {
        "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
