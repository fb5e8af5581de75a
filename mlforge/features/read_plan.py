"""The online read plan: which feature view fills which column of a feature matrix.

One plan serves both readers of the online store: the feature store's `get_online_features`
(features named by references) and serving (a deployed model's feature columns, resolved from
its manifest). A plan is computed once from the spec — no data, no polars — and then answers
every read: per view one online-store read of ``width`` values per entity, whose columns ``src``
go to the matrix columns ``dst``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlforge.config.spec import ProjectSpec
from mlforge.errors import DataError
from mlforge.features.refs import feature_names, service_features


@dataclass(frozen=True)
class ViewRead:
    """Where one feature view's online-store row goes in the feature matrix."""

    view: str
    width: int  # number of values per entity in the online store
    src: np.ndarray  # columns of the online-store row …
    dst: np.ndarray  # … written to these matrix columns


@dataclass(frozen=True)
class OnlineReadPlan:
    """The reads that fill a feature matrix of ``len(features)`` columns, one per view."""

    features: tuple[tuple[str, str], ...]  # (view, feature) per matrix column, in order
    reads: tuple[ViewRead, ...]  # views that fill at least one column, in read order

    @property
    def views(self) -> tuple[str, ...]:
        """The views read, in read order."""
        return tuple(r.view for r in self.reads)

    @property
    def whole_view(self) -> int | None:
        """The view's width when the matrix is exactly one whole view in order (the read is the answer)."""
        if len(self.reads) == 1:
            r = self.reads[0]
            if r.width == len(self.features) and r.src.tolist() == list(range(r.width)):
                return r.width
        return None

    @classmethod
    def of(
        cls, spec: ProjectSpec, features: Sequence[tuple[str, str]], views: Sequence[str] | None = None
    ) -> OnlineReadPlan:
        """The plan of (view, feature) columns; views read in `views` order (default: first use)."""
        order = list(views) if views is not None else list(dict.fromkeys(v for v, _ in features))
        reads = []
        for view in order:
            names = feature_names(spec.feature_view(view))
            pos = {n: i for i, n in enumerate(names)}
            dst = [j for j, (v, _) in enumerate(features) if v == view]
            if dst:
                src = [pos[features[j][1]] for j in dst]
                reads.append(ViewRead(view, len(names), np.asarray(src, np.intp), np.asarray(dst, np.intp)))
        return cls(tuple(features), tuple(reads))

    @classmethod
    def for_model(
        cls,
        spec: ProjectSpec,
        columns: Sequence[str],
        views: Sequence[str],
        feature_service: str,
        owner: str = "the model",
    ) -> OnlineReadPlan:
        """The plan of a model's feature `columns` read from `views` (a deployment's manifest).

        Each column comes from the view its `feature_service` names, when the spec's service still
        lists exactly these columns; otherwise from the first of `views` that has a feature of that
        name. Raises DataError naming `owner` for a view the spec lacks or a column no view has.
        """
        known_views = {v.name for v in spec.feature_views}
        unknown = [v for v in views if v not in known_views]
        if unknown:
            raise DataError(f"manifest of {owner} reads feature views {unknown} the spec does not define")
        view_names = {v: feature_names(spec.feature_view(v)) for v in views}
        owners: list[str | None] = [None] * len(columns)
        with contextlib.suppress(Exception):
            pairs = service_features(spec, feature_service)
            if [f for _, f in pairs] == list(columns) and all(v in view_names for v, _ in pairs):
                owners = [v for v, _ in pairs]
        for j, name in enumerate(columns):
            if owners[j] is None:
                owners[j] = next((v for v in views if name in view_names[v]), None)
        orphans = [n for n, o in zip(columns, owners, strict=True) if o is None]
        if orphans:
            raise DataError(f"features {orphans} of {owner} are in none of the views {list(views)}")
        pairs_ = [(o, n) for o, n in zip(owners, columns, strict=True) if o is not None]
        return cls.of(spec, pairs_, views)
