"""Counts as CloudWatch metrics, through Powertools' embedded metric format (EMF): a log line CloudWatch turns
into a metric, with no API call and nothing to flush.

One line per count (``single_metric``), so each line carries the spa it counts for as a property: a Logs
Insights query counts any metric by ``spa_id`` (``filter ispresent(FeeCharged.0) | stats count(*) by spa_id``),
while the metrics themselves have no spa dimension. A dimension per spa would be a custom metric per spa and name, about 18,000
for a chain of a thousand spas, each billed monthly; the property costs nothing. Messages have a ``channel``
dimension (sms, email), the one split an on-call engineer needs to see at a glance.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from medspa.ports.metrics import Counted


class CloudWatchMetrics:
    """The namespace is the function's ``POWERTOOLS_METRICS_NAMESPACE`` (the template sets it per stage)."""

    def count(self, what: Counted, spa_id: str | None, channel: str | None = None) -> None:
        with single_metric(name=what.value, unit=MetricUnit.Count, value=1,
                           default_dimensions={"channel": channel} if channel else None) as metric:
            if spa_id:
                metric.add_metadata(key="spa_id", value=spa_id)

