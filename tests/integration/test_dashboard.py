"""The operations dashboard in ``template.yaml`` shows every business metric the functions count, under the
dimensions they are counted with (a renamed metric or a forgotten dimension would draw an empty line)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from localcloud.deploy import load_template
from medspa.ports.metrics import Counted

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "MedSpa/${Stage}"


def expanded(rows: list[list[str]]) -> list[list[str]]:
    """CloudWatch's shorthand: ``"."`` repeats the element above, a leading ``"..."`` the row above but its tail."""
    out: list[list[str]] = []
    for row in rows:
        if row and row[0] == "...":
            row = out[-1][:len(out[-1]) - (len(row) - 1)] + row[1:]
        out.append([out[-1][i] if value == "." else value for i, value in enumerate(row)])
    return out


def business_rows() -> list[list[str]]:
    body = load_template(ROOT / "template.yaml")["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    text = re.sub(r"\$\{(?!Stage\})[^}]+\}", "x", body["Fn::Sub"])  # every substitution but the stage's
    widgets = json.loads(text)["widgets"]
    return [row for w in widgets for row in expanded(w["properties"]["metrics"]) if row[0] == NAMESPACE]


def test_every_counted_metric_is_on_the_dashboard_with_the_dimensions_it_is_counted_with():
    rows = business_rows()
    assert {row[1] for row in rows} == {c.value for c in Counted}
    for row in rows:
        dimensions = dict(zip(row[2::2], row[3::2]))
        assert dimensions.get("service") == "medspa", row  # Powertools adds it to every metric
        assert ("channel" in dimensions) == row[1].startswith("Message"), row
    channels = {(row[1], dict(zip(row[2::2], row[3::2]))["channel"]) for row in rows if row[1].startswith("Message")}
    assert channels == {(m, c) for m in ("MessageSent", "MessageSkipped", "MessageFailed", "MessageDropped")
                        for c in ("sms", "email")}
