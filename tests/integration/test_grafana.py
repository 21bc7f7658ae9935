"""etc/grafana/presenced.json (issue 17): every expression of the dashboard names series that
/metrics exports, with labels those series carry — so that no panel stays empty for a typo or a
renamed series."""
import json
import os
import re

from conftest import ROOT

DASHBOARD = os.path.join(ROOT, "etc", "grafana", "presenced.json")
# Labels Prometheus adds when it scrapes, and the bucket bound of histograms.
SCRAPE_LABELS = {"instance", "job", "le"}


def exported(text):
    """{sample name: set of its label names} of a /metrics answer."""
    names = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        assert m, line
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        names.setdefault(m.group(1), set()).update(labels)
    return names


def panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_every_expression_names_exported_series(server):
    dashboard = json.load(open(DASHBOARD))
    series = exported(server.admin("/metrics"))
    targets = [(p["title"], t) for p in panels(dashboard) for t in p.get("targets", [])]
    assert len(targets) >= 20
    variable = dashboard["templating"]["list"][1]["definition"]
    checked = set()
    for title, target in targets + [("instance variable", {"expr": variable})]:
        expr = target["expr"]
        used = set(re.findall(r"\b(presenced_[a-z0-9_]+)", expr))
        assert used, (title, expr)
        for name in used:
            assert name in series, f"{title}: {name} is not exported by /metrics"
        labels = set().union(*(series[n] for n in used)) | SCRAPE_LABELS
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in (x.strip() for x in group.split(",")):
                assert label in labels, f"{title}: no series of {used} has label {label}"
        for matchers in re.findall(r"\{([^}]*)\}", expr):
            for label in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=~?', matchers):
                assert label in labels, f"{title}: no series of {used} has label {label}"
        for label in re.findall(r"\{\{\s*([a-zA-Z_]+)\s*\}\}", target.get("legendFormat", "")):
            assert label in labels, f"{title}: the legend names {label}, which no series has"
        checked |= used
    # What the issue asks a dashboard to show is on it.
    for name in ("presenced_connections", "presenced_status_update_seconds_bucket",
                 "presenced_notification_delivery_seconds_bucket",
                 "presenced_error_replies_total", "presenced_notifications_pending",
                 "presenced_store_used_bytes", "presenced_http_request_seconds_bucket",
                 "presenced_verification_seconds_bucket"):
        assert name in checked, f"the dashboard does not show {name}"


def test_the_dashboard_is_importable_json():
    dashboard = json.load(open(DASHBOARD))
    assert dashboard["uid"] == "presenced" and dashboard["title"] == "presenced"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            g = panel["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]

