"""Open data: the releases of purposes that set ``publish_open_data``, for anyone (issue 6).

Publishing a release is post-processing of an output that was already ε-DP when it went to the service, so it
costs no budget and adds no privacy loss (the post-processing property of differential privacy). Only what
was released is published: the cells (noisy values, intervals, suppression), ε, the method and the query's
shape. The exact cohort size a release row keeps stays internal, and so do the service and the audit index.
A purpose's flag is read from the policy in force, so turning it off withdraws its releases from the list.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from broker.policy.schema import Policy
from broker.privacy.epsilon import from_micro
from broker.privacy.models import Release
from broker.timeutil import as_utc

MAX_PAGE = 1000

#: How each statistic was released (broker.privacy.releases): what a reader needs to use the numbers.
METHODS = {
    "count": "discrete Laplace noise (OpenDP) on per-cell citizen counts, sensitivity 1; pure ε-DP, "
             "one citizen per cell; 95% interval covers the noise only",
    "histogram": "discrete Laplace noise (OpenDP) on per-category citizen counts, sensitivity 1; pure ε-DP; "
                 "95% interval covers the noise only",
    "sum": "discrete Laplace noise (OpenDP) on per-cell sums of clamped per-citizen contributions, ε split "
           "between counts (suppression) and sums; 95% interval covers the noise, not the clamping bias",
    "mean": "noisy sum / noisy count of clamped per-citizen contributions (discrete Laplace, OpenDP), ε split in "
            "two; 95% interval by a union bound, covers the noise, not the clamping bias",
    "quantile": "report-noisy-max over declared candidates on OpenDP quantile scores, ε split with a noisy count "
                "for suppression; no interval",
}
CSV_COLUMNS = ("release_id", "released_at", "purpose", "dataset", "statistic", "measure", "window_from",
               "window_to", "group", "value", "ci95_low", "ci95_high", "suppressed", "epsilon", "method")


@dataclass(frozen=True)
class OpenRelease:
    release_id: str
    released_at: datetime
    purpose_id: str
    purpose_version: int
    dataset_id: str
    spec: dict[str, Any]
    epsilon_micro: int
    cells: list[dict[str, Any]]

    @property
    def method(self) -> str:
        return METHODS.get(str(self.spec.get("statistic")), "see DESIGN §5")

    def as_json(self) -> dict[str, Any]:
        return {"release_id": self.release_id, "released_at": self.released_at.isoformat(),
                "purpose": self.purpose_id, "purpose_version": self.purpose_version, "dataset": self.dataset_id,
                "statistic": self.spec.get("statistic"), "measure": self.spec.get("measure"),
                "group_by": self.spec.get("group_by", []), "quantile": self.spec.get("quantile"),
                "window": {"from": self.spec.get("from"), "to": self.spec.get("to")},
                "epsilon": from_micro(self.epsilon_micro), "method": self.method, "results": self.cells}

    def csv_rows(self) -> list[list[Any]]:
        rows = []
        for cell in self.cells:
            ci = cell.get("ci95") or [None, None]
            group = ";".join(f"{k}={v}" for k, v in sorted((cell.get("group") or {}).items()))
            rows.append([self.release_id, self.released_at.isoformat(), self.purpose_id, self.dataset_id,
                         self.spec.get("statistic"), self.spec.get("measure") or "", self.spec.get("from") or "",
                         self.spec.get("to") or "", group, _blank(cell.get("value")), _blank(ci[0]),
                         _blank(ci[1]), str(bool(cell.get("suppressed"))).lower(),
                         from_micro(self.epsilon_micro), self.method])
        return rows


def _blank(value: Any) -> Any:
    return "" if value is None else value


def publishing_purposes(policy: Policy) -> list[str]:
    return [p.id for p in policy.purposes if p.publish_open_data]


class OpenData:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    def releases(self, *, purpose_id: str | None = None, offset: int = 0,
                 limit: int = MAX_PAGE) -> list[OpenRelease]:
        """Published releases, oldest first (ties by id, so pages are stable), ``limit`` from ``offset``."""
        published = publishing_purposes(self.policy)
        if purpose_id is not None:
            published = [p for p in published if p == purpose_id]
        if not published:
            return []
        stmt = select(Release).where(col(Release.purpose_id).in_(published))
        stmt = (stmt.order_by(col(Release.released_at), col(Release.id))
                .offset(max(offset, 0)).limit(max(1, min(limit, MAX_PAGE))))
        return [OpenRelease(release_id=r.id, released_at=as_utc(r.released_at), purpose_id=r.purpose_id,
                            purpose_version=r.purpose_version, dataset_id=r.dataset_id, spec=json.loads(r.spec),
                            epsilon_micro=r.epsilon_micro, cells=json.loads(r.results))
                for r in self.session.exec(stmt).all()]


def to_csv(releases: list[OpenRelease]) -> str:
    """One row per released cell (RFC 4180, header first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in releases:
        writer.writerows(item.csv_rows())
    return out.getvalue()
