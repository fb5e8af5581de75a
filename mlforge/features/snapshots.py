"""Feature views: snapshots of transformations per entity, as of the end of a day.

A snapshot as of day D has a row for every entity known by D (its source's entity index), reads
only events on or before D (within the view's lookback; lifetime values from the index) and
carries `event_timestamp` = the end of D, from when its values are known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from mlforge.config.spec import FeatureViewSpec
from mlforge.errors import DataError
from mlforge.features.declared import profile_features, sql_snapshot
from mlforge.features.entities import FIRST_DAY, LAST_DAY, IndexRule, index_as_of, stat
from mlforge.features.refs import _plan
from mlforge.io.timeline import end_of

EVENT_TS = "event_timestamp"
_FILL_ZERO = {"count", "sum"}


def _agg(col: str, fn: str, name: str, where: pl.Expr | None = None) -> pl.Expr:
    c = pl.col(col) if where is None else pl.col(col).filter(where)
    expr = {
        "sum": c.sum(),
        "mean": c.mean(),
        "std": c.std(),
        "count": c.count(),
        "min": c.min(),
        "max": c.max(),
    }[fn]
    return expr.cast(pl.Float32).alias(name)


#: (feature name, column, function, window days or None): one entry of a view's plan
PlanEntry = tuple[str, str, str, int | None]
#: index(D) of the view's source dataset for a snapshot day D (see mlforge.features.entities)
IndexOf = Callable[[date], pl.DataFrame]


def compute_snapshot(
    view: FeatureViewSpec,
    events: pl.DataFrame,
    entity_key: str,
    day_col: str,
    as_of: date,
    index: IndexOf | None = None,
) -> pl.DataFrame:
    """Features of every entity known by `as_of` (an event on or before it), as of its end.

    Rows after `as_of` are ignored, so the result can never depend on the future. `index` gives
    the entity index of a day (the stored `entities/<dataset>` partitions); without it the index
    is folded from `events`, which must then start at the first day of the history.
    """
    return compute_snapshots(view, events, entity_key, day_col, [as_of], index)[0]


def compute_snapshots(
    view: FeatureViewSpec,
    events: pl.DataFrame,
    entity_key: str,
    day_col: str,
    days: Sequence[date],
    index: IndexOf | None = None,
) -> list[pl.DataFrame]:
    """`compute_snapshot` for each of `days`, in that order (see `iter_snapshots`)."""
    return [snap for _, snap in iter_snapshots(view, events, entity_key, day_col, days, index)]


def from_index(view: FeatureViewSpec, entry: PlanEntry) -> bool:
    """The feature comes from the entity index (lifetime), not from the lookback's rows."""
    _, _, fn, n = entry
    return fn in ("recency_last", "tenure") or (view.lifetime and n is None)


def iter_snapshots(
    view: FeatureViewSpec,
    events: pl.DataFrame,
    entity_key: str,
    day_col: str,
    days: Sequence[date],
    index: IndexOf | None = None,
    extra: Mapping[str, pl.DataFrame] | None = None,
) -> Iterator[tuple[date, pl.DataFrame]]:
    """(day, snapshot) for each of `days`, in order; each snapshot equals `compute_snapshot(day)`.

    A SQL view runs its query per day over `events` (its source) and the `extra` sources' rows,
    each cut to the day's lookback (:func:`mlforge.features.declared.sql_snapshot`); a profile
    view reads the attributes off the index of its profile dataset.

    A snapshot has one row per entity of the index as of its day (the universe), sorted by key:
    lifetime features (recency, tenure, a lifetime view's aggregates) come from the index; the
    lookback's aggregates from its rows, zero counts and sums (null means, min, max) for an entity
    without a row there.

    Bit for bit: `compute_snapshot` is this function for one day, and a day's lookback features
    are computed from exactly the rows of its window, in the same order, by the same kernel. The
    events of the days' joint lookback are selected and stably sorted by entity once; each day then
    selects its window with one mask over that range and reduces every entity's contiguous run of
    rows with numpy (see `_Runs`), instead of filtering the whole frame and hash-grouping it per
    day: cost O(rows) once plus O(window rows) per day. What the numpy kernel does not cover
    (`std`, columns other than float64 / integers, a NaN in the window) goes through a polars
    group-by on the same rows. Only one day's snapshot is held at a time.
    """
    days = list(days)
    if not days:
        return
    plan = _plan(view)
    if index is None:
        cols = list(dict.fromkeys(p[1] for p in plan if p[1] and from_index(view, p)))
        rule = None
        if view.kind == "profile":
            attrs = tuple(dict.fromkeys(f.column or f.name for f in view.features))
            # without the stored index the day stands for valid_from (day precision)
            rule = IndexRule(view.source, entity_key, (), attrs, day_col)
        folded = index_as_of(events, entity_key, day_col, days, cols, rule)
        index = folded.__getitem__
    if view.kind != "transformations":
        tables = {view.source: events, **(extra or {})}
        for as_of in days:
            idx = index(as_of)
            if view.kind == "profile":
                yield (
                    as_of,
                    _universe(view, plan, profile_features(view), idx.clear(), idx, entity_key, as_of),
                )
            else:
                result = sql_snapshot(view, tables, entity_key, day_col, as_of)
                yield as_of, _universe(view, plan, [], result, idx, entity_key, as_of)
        return
    kernel = [p for p in plan if not from_index(view, p)]
    lifetime = [p for p in plan if from_index(view, p)]
    lookback = timedelta(days=view.read_days - 1)
    first, last = min(days) - lookback, max(days)
    value_cols = list(dict.fromkeys(col for _, col, fn, _ in kernel if not fn.startswith("recency")))
    keep = list(dict.fromkeys([entity_key, day_col, *value_cols]))
    rows = (
        events.select(keep)
        .filter(pl.col(day_col).is_between(first, last))
        .sort(entity_key, maintain_order=True)
    )
    key_dtype = events.schema[entity_key]
    fast = _Runs.of(rows, kernel, entity_key, day_col) if rows.height else None
    for as_of in days:
        lo, hi = as_of - lookback, as_of
        active = fast.snapshot(view, kernel, lo, hi, entity_key) if fast is not None else None
        if active is None:
            win = rows if len(days) == 1 else rows.filter(pl.col(day_col).is_between(lo, hi))
            active = _snapshot(kernel, win, entity_key, day_col, as_of, key_dtype)
        life = [_lifetime_expr(p, as_of) for p in lifetime]
        yield as_of, _universe(view, plan, life, active, index(as_of), entity_key, as_of)


def _lifetime_expr(entry: PlanEntry, as_of: date) -> pl.Expr:
    """A lifetime feature from the entity index's columns."""
    name, col, fn, _ = entry
    if fn == "recency_last":
        expr = (pl.lit(as_of) - pl.col(LAST_DAY)).dt.total_days()
    elif fn in ("tenure", "recency_first"):
        expr = (pl.lit(as_of) - pl.col(FIRST_DAY)).dt.total_days()
    else:
        n, total, sq = pl.col(stat(col, "count")), pl.col(stat(col, "sum")), pl.col(stat(col, "sumsq"))
        if fn == "count":
            expr = n
        elif fn == "sum":
            expr = total
        elif fn == "mean":
            expr = pl.when(n > 0).then(total / n)
        elif fn == "std":  # the sample deviation (ddof 1), as polars' std of the rows
            var = (sq - total * total / n) / (n - 1)
            expr = pl.when(n > 1).then(pl.max_horizontal(var, pl.lit(0.0)).sqrt())
        else:
            expr = pl.col(stat(col, fn))
    return expr.cast(pl.Float32).alias(name)


def _universe(
    view: FeatureViewSpec,
    plan: list[PlanEntry],
    from_idx: list[pl.Expr],
    active: pl.DataFrame,
    index: pl.DataFrame,
    entity_key: str,
    as_of: date,
) -> pl.DataFrame:
    """The snapshot over every entity of `index`: the features `from_idx` computes from the index's
    columns, then the `active` entities' (lookback rows, a SQL result), left-joined by key."""
    # a row without an entity scores no one
    active = active.filter(pl.col(entity_key).is_not_null()).with_columns(
        pl.col(entity_key).cast(index.schema[entity_key])
    )
    stray = active.filter(~pl.col(entity_key).is_in(index[entity_key].implode()))
    if stray.height:
        raise DataError(
            f"feature view {view.name}: {stray.height} {entity_key}(s) as of {as_of} (e.g. "
            f"{stray[entity_key][0]!r}) are not in the entity index of {view.source} as of that day "
            f"(no row of {view.source} on or before it); rematerialize entities/{view.source}"
        )
    out = index.select(entity_key, *from_idx)
    out = out.join(active.drop(EVENT_TS, strict=False), on=entity_key, how="left", maintain_order="left")
    # an entity without a row in the lookback counted and summed nothing there
    named = {e.meta.output_name() for e in from_idx}
    fills = [pl.col(p[0]).fill_null(0.0) for p in plan if p[2] in _FILL_ZERO and p[0] not in named]
    fills += [pl.col(f.name).fill_null(f.fill_value) for f in view.features if f.fill_value is not None]
    ts = pl.lit(end_of(as_of)).cast(pl.Datetime("us")).alias(EVENT_TS)
    return out.with_columns(*fills, ts).select(entity_key, EVENT_TS, *[p[0] for p in plan])


_EPOCH = date(1970, 1, 1)
_NUMPY_FNS = {"count", "sum", "mean", "min", "max", "recency_last", "recency_first"}
_EXACT_INTS = (pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt32, pl.UInt16, pl.UInt8)


class _Runs:
    """The range's rows, sorted by entity, as numpy arrays: the numpy snapshot kernel's input.

    Per day, the window's rows form one contiguous run per entity. Sums and counts are
    `np.bincount` over the run numbers (a sequential sum of the window's values in row order per
    entity: rows outside a window or null add an exact +0.0), min/max are `reduceat` over the
    runs, and recency takes a run's first/last day when days ascend within runs.
    """

    def __init__(
        self,
        keys: pl.Series,
        codes: np.ndarray,
        day: np.ndarray,
        days_ascend: bool,
        values: dict[str, tuple[np.ndarray, np.ndarray | None]],
    ) -> None:
        self.keys = keys  # one per entity, sorted
        self.codes = codes  # entity number of each row (non-decreasing)
        self.day = day  # days since 1970-01-01 of each row
        self.days_ascend = days_ascend  # days never decrease within an entity's rows
        self.values = values  # column -> (values with nulls as 0, valid mask or None)

    @classmethod
    def of(cls, rows: pl.DataFrame, plan: list[PlanEntry], entity_key: str, day_col: str) -> _Runs | None:
        """None when the numpy kernel does not apply (a function or a dtype it does not cover)."""
        if rows.schema[day_col] != pl.Date or any(fn not in _NUMPY_FNS for _, _, fn, _ in plan):
            return None
        values: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for col in dict.fromkeys(c for _, c, fn, _ in plan if not fn.startswith("recency")):
            dtype = rows.schema[col]
            if dtype == pl.Float64:
                s = rows[col]
            elif dtype in _EXACT_INTS:
                s = rows[col].cast(pl.Int64)
                # float64 sums of integers are exact (as polars' int64 sums) below 2**53
                if s.abs().cast(pl.Float64).sum() >= 2.0**52:
                    return None
            else:
                return None  # float32 / uint64 / non-numeric columns: polars defines their sums
            valid = s.is_not_null().to_numpy() if s.null_count() else None
            values[col] = (s.fill_null(0).to_numpy(), valid)
        key = rows[entity_key]
        new = key.ne_missing(key.shift(1)).to_numpy().copy()
        new[0] = True  # the first row starts a run even when its key is null
        codes = np.cumsum(new, dtype=np.int64) - 1
        day = rows[day_col].to_physical().to_numpy()
        ascend = bool(np.all((np.diff(day) >= 0) | new[1:]))
        return cls(key.filter(pl.Series(new)), codes, day, ascend, values)

    def snapshot(
        self,
        view: FeatureViewSpec,
        plan: list[PlanEntry],
        lo: date,
        hi: date,
        entity_key: str,
    ) -> pl.DataFrame | None:
        """The snapshot as of `hi` from the rows with lo <= day <= hi; None if a value is NaN."""
        lo_i, hi_i = (lo - _EPOCH).days, (hi - _EPOCH).days
        sel = np.flatnonzero((self.day >= lo_i) & (self.day <= hi_i))
        if sel.size == 0:
            return pl.DataFrame(
                schema={
                    entity_key: self.keys.dtype,
                    EVENT_TS: pl.Datetime("us"),
                    **{p[0]: pl.Float32 for p in plan},
                }
            )
        picked: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for col, (v, valid) in self.values.items():
            vs = v[sel]
            if vs.dtype.kind == "f" and np.isnan(vs).any():
                return None  # NaN ordering and propagation: leave it to polars
            picked[col] = (vs, None if valid is None else valid[sel])
        code = self.codes[sel]
        new = np.empty(sel.size, dtype=bool)
        new[0] = True
        np.not_equal(code[1:], code[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        run = np.cumsum(new) - 1  # the run (output row) of each window row
        m = starts.size
        day = self.day[sel]
        windows: dict[int | None, np.ndarray | None] = {}
        counts: dict[tuple[str, int | None], np.ndarray] = {}
        sums: dict[tuple[str, int | None], np.ndarray] = {}

        def window(n: int | None) -> np.ndarray | None:
            if n not in windows:
                windows[n] = None if n is None else day > hi_i - n
            return windows[n]

        def mask(col: str, n: int | None) -> np.ndarray | None:
            w, valid = window(n), picked[col][1]
            return valid if w is None else (w if valid is None else w & valid)

        def count(col: str, n: int | None) -> np.ndarray:
            if (col, n) not in counts:
                mk = mask(col, n)
                counts[col, n] = (
                    np.diff(np.append(starts, sel.size)) if mk is None else np.bincount(run[mk], minlength=m)
                )
            return counts[col, n]

        def total(col: str, n: int | None) -> np.ndarray:
            if (col, n) not in sums:
                vs, mk = picked[col][0], mask(col, n)
                sums[col, n] = np.bincount(
                    run, weights=vs if mk is None else np.where(mk, vs, 0), minlength=m
                )
            return sums[col, n]

        end_us = (end_of(hi) - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        cols: dict[str, pl.Series] = {
            entity_key: self.keys.gather(code[starts]),
            EVENT_TS: pl.Series(EVENT_TS, np.full(m, end_us, dtype=np.int64)).cast(pl.Datetime("us")),
        }
        for name, col, fn, n in plan:
            missing = None
            if fn in ("recency_last", "recency_first"):
                if self.days_ascend:
                    edge = day[np.append(starts[1:], sel.size) - 1] if fn == "recency_last" else day[starts]
                else:
                    edge = (np.maximum if fn == "recency_last" else np.minimum).reduceat(day, starts)
                out: np.ndarray = hi_i - edge
            else:
                if n is not None and n >= view.read_days:
                    n = None  # the window covers the whole lookback
                if fn == "count":
                    out = count(col, n)
                elif fn == "sum":
                    out = total(col, n)
                elif fn == "mean":
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out = total(col, n) / count(col, n)
                    missing = count(col, n) == 0
                else:  # min / max: rows outside the window or null never win
                    vs, mk = picked[col][0], mask(col, n)
                    if mk is not None:
                        if vs.dtype.kind == "f":
                            fill = -np.inf if fn == "max" else np.inf
                        else:
                            fill = np.iinfo(vs.dtype).min if fn == "max" else np.iinfo(vs.dtype).max
                        vs = np.where(mk, vs, fill)
                    out = (np.maximum if fn == "max" else np.minimum).reduceat(vs, starts)
                    missing = count(col, n) == 0
            series = pl.Series(name, out.astype(np.float32))
            if missing is not None and missing.any():
                series = series.scatter(np.flatnonzero(missing), None)
            cols[name] = series
        return pl.DataFrame(cols)


def _snapshot(
    plan: list[PlanEntry],
    win: pl.DataFrame,
    entity_key: str,
    day_col: str,
    as_of: date,
    key_dtype: pl.DataType,
) -> pl.DataFrame:
    """The snapshot as of `as_of` from exactly its window's rows (stably sorted by entity) in polars."""
    exprs: list[pl.Expr] = []
    for name, col, fn, n in plan:
        if fn == "recency_last":
            exprs.append((pl.lit(as_of) - pl.col(day_col).max()).dt.total_days().cast(pl.Float32).alias(name))
        elif fn == "recency_first":
            exprs.append((pl.lit(as_of) - pl.col(day_col).min()).dt.total_days().cast(pl.Float32).alias(name))
        elif n is None:
            exprs.append(_agg(col, fn, name))
        else:
            # A filtered aggregate restricts it to the last n days without a second group-by.
            exprs.append(_agg(col, fn, name, where=pl.col(day_col) > (as_of - timedelta(days=n))))
    names = [p[0] for p in plan]
    # Rows are sorted by entity: the group-by takes contiguous slices (no hashing), and keeping
    # the order of first appearance returns the entities sorted.
    snap = (
        win.group_by(entity_key, maintain_order=True).agg(exprs)
        if win.height
        else pl.DataFrame(schema={entity_key: key_dtype, **{n: pl.Float32 for n in names}})
    )
    fills = [pl.col(n).fill_null(0.0) for n, _, fn, _ in plan if fn in _FILL_ZERO]
    return snap.with_columns(*fills, pl.lit(end_of(as_of)).cast(pl.Datetime("us")).alias(EVENT_TS)).select(
        entity_key, EVENT_TS, *names
    )
