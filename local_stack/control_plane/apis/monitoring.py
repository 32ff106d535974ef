"""Cloud Monitoring: aligners must suit the metric's value type.

`Fidelity.id_rules` (Google's documented request rules): ALIGN_MAX, ALIGN_MIN, ALIGN_MEAN
and ALIGN_SUM apply to numeric metrics only; a DISTRIBUTION metric (latencies) takes
ALIGN_DELTA (or ALIGN_PERCENTILE_*), then a REDUCE_PERCENTILE_* reducer.
https://cloud.google.com/monitoring/api/v3/aggregation#aligner-descriptions
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import ApiRules, Request
from local_stack.control_plane.errors import GoogleError

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

# The distribution-valued metrics among those we chart or alert on
# (https://cloud.google.com/monitoring/api/metrics_gcp: run.googleapis.com).
DISTRIBUTIONS = frozenset({"run.googleapis.com/request_latencies"})
NUMERIC_ONLY = frozenset({"ALIGN_MAX", "ALIGN_MIN", "ALIGN_MEAN", "ALIGN_SUM"})


def _aggregations(value: Any, metric: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (metric type, aggregation) pair inside a dashboard or alert policy."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(value, dict):
        filter_ = value.get("filter", "")
        named = re.search(r'metric\.type="([^"]+)"', filter_) if isinstance(filter_, str) else None
        metric = named.group(1) if named else metric
        for key, item in value.items():
            if key in ("aggregation", "aggregations"):
                for aggregation in item if isinstance(item, list) else [item]:
                    found.append((metric, aggregation))
            else:
                found += _aggregations(item, metric)
    elif isinstance(value, list):
        for item in value:
            found += _aggregations(item, metric)
    return found


class Monitoring(ApiRules):
    api: ClassVar[str] = "monitoring"

    def check(self, plane: ControlPlane, request: Request) -> None:
        if not plane.fidelity.id_rules or request.action not in ("create", "patch"):
            return
        for metric, aggregation in _aggregations(request.body):
            aligner = aggregation.get("perSeriesAligner", "")
            if metric in DISTRIBUTIONS and aligner in NUMERIC_ONLY:
                raise GoogleError(
                    400,
                    f'Field aggregation.perSeriesAligner had an invalid value of "{aligner}": '
                    f"The aligner cannot be applied to metrics with kind DELTA and value type "
                    f"DISTRIBUTION ({metric}).",
                    "INVALID_ARGUMENT",
                )
