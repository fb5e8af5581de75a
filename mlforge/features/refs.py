"""Feature names and 'view:feature' references, from the spec alone (no polars, no data).

Serving resolves a manifest's columns with these at load time, so they live apart from the
snapshot computation in :mod:`mlforge.features` (which re-exports them) and import nothing heavy.
"""

from __future__ import annotations

from mlforge.config.spec import (
    AggregateTransform,
    FeatureViewSpec,
    ProjectSpec,
    RecencyTransform,
    TenureTransform,
    WindowTransform,
)


def _plan(view: FeatureViewSpec) -> list[tuple[str, str, str, int | None]]:
    """(feature name, column, function, window days or None) in a stable order, deduplicated."""
    out: list[tuple[str, str, str, int | None]] = []
    seen: set[str] = set()

    def add(name: str, col: str, fn: str, window: int | None) -> None:
        if name not in seen:
            seen.add(name)
            out.append((name, col, fn, window))

    for f in view.features:  # SQL and profile views: declared, read as they are
        add(f.name, f.column or f.name, "declared", None)
    for t in view.transformations:
        if isinstance(t, RecencyTransform):
            add("days_since_last", "", "recency_last", None)
            add("days_since_first", "", "recency_first", None)
        elif isinstance(t, TenureTransform):
            add("tenure_days", "", "tenure", None)
        elif isinstance(t, AggregateTransform):
            for fn in t.functions:
                for col in t.columns:
                    add("event_count" if fn == "count" else f"{col}_{fn}", col, fn, None)
        elif isinstance(t, WindowTransform):
            for n in t.windows_days:
                for fn in t.functions:
                    for col in t.columns:
                        add(f"event_count_{n}d" if fn == "count" else f"{col}_{fn}_{n}d", col, fn, n)
    return out


def feature_names(view: FeatureViewSpec) -> list[str]:
    """The view's features, in the order models and the online store use."""
    return [p[0] for p in _plan(view)]


def service_features(spec: ProjectSpec, service: str) -> list[tuple[str, str]]:
    """(view, feature) pairs a feature service reads, in order (names unique across its views:
    they are the model's columns)."""
    from mlforge.errors import MLForgeError

    pairs = resolve_refs(spec, spec.feature_service(service).features)
    owner: dict[str, str] = {}
    for view, feat in pairs:
        if owner.setdefault(feat, view) != view:
            raise MLForgeError(
                f"feature service '{service}': feature '{feat}' comes from views '{owner[feat]}' and "
                f"'{view}' (a model's columns need distinct names: rename one, or list one explicitly)"
            )
    return pairs


def service_views(spec: ProjectSpec, service: str) -> list[str]:
    """Every view a feature service reads, sorted: its features' views and the main-entity views
    holding a joined view's key."""
    s = spec.feature_service(service)
    views = {v for v, _ in service_features(spec, service)}
    return sorted(views | {j.on.split(":", 1)[0] for j in s.joins})


def resolve_refs(spec: ProjectSpec, refs: list[str]) -> list[tuple[str, str]]:
    """(view, feature) pairs of 'view:feature' / 'view:*' references, in order; unknown ones raise."""
    from mlforge.errors import MLForgeError

    out: list[tuple[str, str]] = []
    for ref in refs:
        view, sep, feat = ref.partition(":")
        if not sep:
            raise MLForgeError(f"feature reference '{ref}' must look like 'view:feature' or 'view:*'")
        names = feature_names(spec.feature_view(view))
        if feat != "*" and feat not in names:
            raise MLForgeError(f"feature view '{view}' has no feature '{feat}' (features: {names})")
        out.extend((view, n) for n in (names if feat == "*" else [feat]))
    return out
