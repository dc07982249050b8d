"""The Grafana dashboard charts every metric topictag exports, and only those."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "topictag-dashboard.json"


def exported() -> set[str]:
    return set(re.findall(r'"(topictag_\w+)"', (REPO / "shared" / "topictag" / "metrics.py").read_text()))


def charted() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    return {re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"topictag_\w+", e)}


def test_charts_only_real_metrics():
    assert not charted() - exported(), "no such metric in shared/topictag/metrics.py"


def test_charts_every_metric():
    assert not exported() - charted(), "add a panel to deploy/grafana/topictag-dashboard.json"


def test_panels_use_the_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["templating"]["list"][0]["name"] == "datasource"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
