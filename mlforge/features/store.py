"""The feature store API a Feast user expects, on MLForge's offline and online stores.

`get_historical_features` (point-in-time join for training), `get_online_features` (latest values
for serving, in request order, with explicit missing markers) and `list_feature_views`. Features
are named by a feature service or by 'view:feature' / 'view:*' references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from mlforge.config.project import Project
from mlforge.features.offline import point_in_time_join, read_snapshots, stored_snapshot_days
from mlforge.features.online import OnlineStore, open_online_store
from mlforge.features.read_plan import OnlineReadPlan
from mlforge.features.refs import feature_names, resolve_refs
from mlforge.features.snapshots import EVENT_TS
from mlforge.io.timeline import end_of


@dataclass(frozen=True)
class FeatureViewInfo:
    """What `list_feature_views` reports about one view."""

    name: str
    entity: str
    join_key: str
    features: list[str]
    ttl_days: int
    lookback_days: int | str  # 'all': lifetime
    materialized_days: int
    first_day: date | None
    last_day: date | None


@dataclass(frozen=True)
class OnlineFeatures:
    """Online feature values for a list of entities, in request order."""

    entity_ids: list[str]
    feature_names: list[str]  # 'view:feature'
    values: np.ndarray  # float64 [n_entities, n_features], NaN where missing
    found: np.ndarray  # bool [n_entities, n_views]: the view had a row for the entity
    views: list[str]

    def to_dict(self) -> dict[str, list[object]]:
        """Column-wise dict like Feast's `OnlineResponse.to_dict()`; missing values are None."""
        out: dict[str, list[object]] = {"entity_id": list(self.entity_ids)}
        for j, name in enumerate(self.feature_names):
            col = self.values[:, j]
            out[name] = [None if np.isnan(v) else float(v) for v in col]
        return out

    def to_polars(self) -> pl.DataFrame:
        """The values as a frame (nulls where missing)."""
        return pl.DataFrame(self.to_dict())

    def to_df(self) -> Any:
        """The values as a pandas frame, like Feast's `OnlineResponse.to_df()`."""
        return self.to_polars().to_pandas()


def _refs(project: Project, features: str | Sequence[str]) -> list[tuple[str, str]]:
    if isinstance(features, str):
        if ":" in features:
            return resolve_refs(project.spec, [features])
        return resolve_refs(project.spec, project.spec.feature_service(features).features)
    return resolve_refs(project.spec, list(features))


class FeatureStore:
    """Offline and online feature access for one project."""

    def __init__(self, project: Project, online: OnlineStore | None = None) -> None:
        self.project = project
        self._online = online
        self._plans: dict[str | tuple[str, ...], OnlineReadPlan] = {}

    @property
    def online(self) -> OnlineStore:
        """The project's online store (opened on first use)."""
        if self._online is None:
            s = self.project.settings
            self._online = open_online_store(s.online_store_url, s.online_key_prefix)
        return self._online

    def list_feature_views(self) -> list[FeatureViewInfo]:
        """Every view with its features and which days its offline store holds."""
        out = []
        storage = self.project.storage
        for v in self.project.spec.feature_views:
            days = stored_snapshot_days(storage, v.name)
            out.append(
                FeatureViewInfo(
                    name=v.name,
                    entity=v.entity,
                    join_key=self.project.spec.entity(v.entity).join_key,
                    features=feature_names(v),
                    ttl_days=v.ttl_days,
                    lookback_days=v.lookback_days,
                    materialized_days=len(days),
                    first_day=days[0] if days else None,
                    last_day=days[-1] if days else None,
                )
            )
        return out

    def get_historical_features(self, entity_df: Any, features: str | Sequence[str]) -> Any:
        """Point-in-time correct features for rows of (join key, event_timestamp).

        For each row: the latest snapshot at or before its timestamp and within the view's TTL;
        never one from after it. Rows keep their order; missing values are null. A pandas
        `entity_df` gets a pandas frame back, a polars one a polars frame.
        """
        if not isinstance(entity_df, pl.DataFrame):
            return self.get_historical_features(pl.from_pandas(entity_df), features).to_pandas()
        spec = self.project.spec
        out = entity_df
        if EVENT_TS not in out.columns:
            from mlforge.errors import MLForgeError

            raise MLForgeError(f"entity_df needs an '{EVENT_TS}' column (got {out.columns})")
        by_view: dict[str, list[str]] = {}
        for view, feat in _refs(self.project, features):
            by_view.setdefault(view, []).append(feat)
        ts = out[EVENT_TS].cast(pl.Datetime("us"))
        for view_name, feats in by_view.items():
            fv = spec.feature_view(view_name)
            join_key = spec.entity(fv.entity).join_key
            days = self._stored_days(view_name, ts.min() - timedelta(days=fv.ttl_days), ts.max())  # type: ignore[arg-type, operator]
            if days:
                snaps = read_snapshots(self.project.storage, view_name, days)
            else:
                snaps = pl.DataFrame(
                    schema={
                        join_key: out.schema[join_key],
                        EVENT_TS: pl.Datetime("us"),
                        **dict.fromkeys(feats, pl.Float32),
                    }
                )
            out = point_in_time_join(out, snaps, join_key, timedelta(days=fv.ttl_days), feats)
        return out

    def _stored_days(self, view: str, lo: datetime, hi: datetime) -> list[date]:
        """Stored snapshot days (one listing) whose end-of-day timestamps fall in [lo, hi]."""
        return [d for d in stored_snapshot_days(self.project.storage, view) if lo <= end_of(d) <= hi]

    def get_online_features(
        self,
        features: str | Sequence[str],
        entity_ids: Sequence[str] | None = None,
        *,
        entity_rows: Sequence[dict[str, Any]] | None = None,
    ) -> OnlineFeatures:
        """Latest values per entity from the online store: one read per view, request order kept.

        Entities as ids, or in Feast's shape, ``entity_rows=[{"customer_id": "00003"}, ...]`` (each
        row names the features' join key); `features` is a service name or ``view:feature`` refs.
        """
        plan = self._online_plan(features)
        names = [f"{v}:{f}" for v, f in plan.features]
        if (entity_ids is None) == (entity_rows is None):
            from mlforge.errors import MLForgeError

            raise MLForgeError("get_online_features: give exactly one of entity_ids or entity_rows")
        if entity_rows is not None:
            entity_ids = _ids_of_rows(self.project, plan, entity_rows)
        assert entity_ids is not None
        ids = [str(e) for e in entity_ids]
        if plan.whole_view is not None:  # one view, all its features in order: the read is the answer
            vals, ok = self.online.read(plan.views[0], ids, plan.whole_view)
            values = np.asarray(vals, dtype=np.float64)
            return OnlineFeatures(
                ids, names, values, np.asarray(ok, dtype=bool).reshape(-1, 1), list(plan.views)
            )
        values = np.full((len(ids), len(plan.features)), np.nan)
        found = plan.execute(self.online.read, ids, values)
        return OnlineFeatures(ids, names, values, found, list(plan.views))

    def _online_plan(self, features: str | Sequence[str]) -> OnlineReadPlan:
        """The resolved references of a feature list, computed once per list (the spec is fixed)."""
        key = features if isinstance(features, str) else tuple(features)
        plan = self._plans.get(key)
        if plan is None:
            plan = OnlineReadPlan.of(
                self.project.spec, _refs(self.project, key if isinstance(key, str) else list(key))
            )
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        return plan


_MAX_PLANS = 256


def _ids_of_rows(project: Project, plan: OnlineReadPlan, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The entity ids of Feast-style entity rows: each row must hold the main view's join key."""
    from mlforge.errors import MLForgeError

    key = project.spec.join_key(plan.views[0])
    missing = next((i for i, r in enumerate(rows) if key not in r), None)
    if missing is not None:
        raise MLForgeError(f"entity_rows[{missing}] has no {key!r} (the features' join key): {rows[missing]}")
    return [str(r[key]) for r in rows]
