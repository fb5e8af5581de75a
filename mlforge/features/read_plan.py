"""The online read plan: which feature view fills which column of a feature matrix.

One plan serves both readers of the online store: the feature store's `get_online_features`
(features named by references) and serving (a deployed model's feature columns, resolved from
its manifest). A plan is computed once from the spec — no data, no polars — and then answers
every read: per view one online-store read of ``width`` values per entity, whose columns ``src``
go to the matrix columns ``dst``. A view keyed by another entity (a service's `joins`) is read
second, with the keys its main-entity feature holds (:class:`JoinKey`) in the first read's rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mlforge.config.spec import ProjectSpec, ServiceJoin
from mlforge.errors import DataError
from mlforge.features.refs import feature_names, service_features

#: an online-store read: (view, entity ids, width) -> (values [n, width], found [n])
Read = Callable[[str, Sequence[str], int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class JoinKey:
    """Where the key of a joined view's entity is: a main-entity view's feature, stored as a float
    (an int id as it is, a category as the index of its value), and how it decodes."""

    view: str  # the main-entity view holding the key
    feature: str
    position: int  # of the feature in that view's stored row
    categories: tuple[str, ...] | None  # a category's values in code order

    @classmethod
    def of(cls, spec: ProjectSpec, join: ServiceJoin) -> JoinKey:
        """The key of a service join (validated by the spec)."""
        view, _, feature = join.on.partition(":")
        fv = spec.feature_view(view)
        declared = next(f for f in fv.features if f.name == feature)
        cats = tuple(declared.categories) if declared.categories is not None else None
        return cls(view, feature, feature_names(fv).index(feature), cats)

    def keys(self, values: np.ndarray) -> list[str | None]:
        """The other entity's key of each stored value (None: missing or not a known category)."""
        out: list[str | None] = []
        for v in np.asarray(values, dtype=np.float64).tolist():
            if v != v:  # NaN: no value as of the snapshot
                out.append(None)
            elif self.categories is not None:
                i = int(v)
                out.append(self.categories[i] if 0 <= i < len(self.categories) else None)
            else:
                out.append(str(int(v)))
        return out


@dataclass(frozen=True)
class ViewRead:
    """Where one feature view's online-store row goes in the feature matrix."""

    view: str
    width: int  # number of values per entity in the online store
    src: np.ndarray  # columns of the online-store row …
    dst: np.ndarray  # … written to these matrix columns
    via: JoinKey | None = None  # a joined view: its keys come from this earlier read


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

    def execute(self, read: Read, ids: Sequence[str], out: np.ndarray) -> np.ndarray:
        """Fill `out` [len(ids), len(features)] with `read`s in plan order; found [n, reads].

        A joined view is read with the keys decoded from its main-entity read (rows whose key is
        missing stay NaN and not found).
        """
        found = np.zeros((len(ids), len(self.reads)), dtype=bool)
        rows: dict[str, np.ndarray] = {}
        for i, r in enumerate(self.reads):
            if r.via is None:
                values, hit = read(r.view, ids, r.width)
            else:
                keys = r.via.keys(rows[r.via.view][:, r.via.position])
                have = [k for k, key in enumerate(keys) if key is not None]
                values = np.full((len(ids), r.width), np.nan)
                hit = np.zeros(len(ids), dtype=bool)
                if have:
                    got, ok = read(r.view, [str(keys[k]) for k in have], r.width)
                    values[have], hit[have] = got, ok
            rows[r.view] = values
            found[:, i] = hit
            out[:, r.dst] = values[:, r.src]
        return found

    @classmethod
    def of(
        cls,
        spec: ProjectSpec,
        features: Sequence[tuple[str, str]],
        views: Sequence[str] | None = None,
        joins: Sequence[ServiceJoin] = (),
    ) -> OnlineReadPlan:
        """The plan of (view, feature) columns; views read in `views` order (default: first use),
        a joined view after the view holding its key (read for the key alone if it fills nothing)."""
        order = list(views) if views is not None else list(dict.fromkeys(v for v, _ in features))
        via = {j.view: JoinKey.of(spec, j) for j in joins if j.view in order}
        order = [v for v in order if v not in via]
        order += list(dict.fromkeys(k.view for k in via.values() if k.view not in order))
        order += list(via)
        reads = []
        for view in order:
            names = feature_names(spec.feature_view(view))
            pos = {n: i for i, n in enumerate(names)}
            dst = [j for j, (v, _) in enumerate(features) if v == view]
            if dst or any(k.view == view for k in via.values()):
                src = [pos[features[j][1]] for j in dst]
                reads.append(
                    ViewRead(
                        view, len(names), np.asarray(src, np.intp), np.asarray(dst, np.intp), via.get(view)
                    )
                )
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
        joins: Sequence[ServiceJoin] = ()
        with contextlib.suppress(Exception):
            joins = spec.feature_service(feature_service).joins
        return cls.of(spec, pairs_, views, joins)
