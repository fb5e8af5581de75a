"""`mlforge deploy …`: deploy a registered version, inspect, roll back and re-weight endpoints."""

from __future__ import annotations

from typing import Literal

from cyclopts import App

from mlforge.cli.options import Home, Spec, fail, load_project

deploy_app = App(
    name="deploy",
    help="Deploy a registered model version to an endpoint (`mlforge deploy MODEL --version N --endpoint E`); "
    "inspect, roll back and re-weight endpoint deployments.",
)


@deploy_app.default
def deploy_model(
    model: str,
    /,
    *,
    endpoint: str,
    version: int | None = None,
    alias: str | None = None,
    strategy: Literal["blue_green", "canary", "champion_challenger"] | None = None,
    steps: str | None = None,
    challenger_traffic: int | None = None,
    mode: Literal["split", "shadow"] | None = None,
    spec: Spec = None,
    home: Home = None,
) -> None:
    """Write a new manifest revision of ENDPOINT serving MODEL's version N (or the one ALIAS names),
    through the same code as the deployment asset.

    Parameters
    ----------
    model
        The model's name in the spec.
    endpoint
        The endpoint to deploy to (it must serve MODEL in the spec).
    version
        The registered version to deploy.
    alias
        Or the alias naming it (``champion``, ``challenger``).
    strategy
        How it reaches traffic (default: the endpoint's strategy in the spec). Champion-challenger
        deploys the version as the challenger beside the champion.
    steps
        Canary traffic steps in percent, e.g. ``10,50,100``.
    challenger_traffic
        Champion-challenger: the challenger's share in percent.
    mode
        Champion-challenger: ``split`` (answers its share) or ``shadow`` (scores, never answers).
    """
    from mlforge.deployment.rollout import deploy_version, strategy_of

    if (version is None) == (alias is None):
        fail("give exactly one of --version N or --alias NAME")
    project = load_project(spec, home)
    s = project.spec
    s.model(model)
    dep = s.deployment(endpoint)
    overrides: dict[str, object] = {"kind": strategy} if strategy else {}
    if steps is not None:
        try:
            overrides["steps"] = [int(x) for x in steps.split(",") if x.strip()]
        except ValueError:
            fail(f"--steps must be percents separated by commas, e.g. 10,50,100, got {steps!r}")
    if challenger_traffic is not None:
        overrides["challenger_traffic"] = challenger_traffic
    if mode is not None:
        overrides["mode"] = mode
    chosen = strategy_of(overrides, dep.strategy)
    info = project.tracker.resolve(model, version, alias or "champion")
    manifest, changed = deploy_version(project.storage, project.tracker, s, endpoint, info, chosen)
    if not changed:
        print(f"{endpoint}: already serves this (revision {manifest.revision}); nothing written")
    else:
        print(f"{endpoint}: revision {manifest.revision} ({chosen.kind}) serves")
    for v in manifest.summary().variants:
        print(f"  {v.line()}")
    if chosen.kind != dep.strategy.kind and chosen.kind in ("canary", "champion_challenger"):
        print(
            f"note: the spec deploys {endpoint} {dep.strategy.kind}, so no canary sensor advances this "
            f"rollout; move it with `mlforge deploy traffic {endpoint} ...` or set the strategy in the spec"
        )


@deploy_app.command(name="status")
def deploy_status(endpoint: str, spec: Spec = None, home: Home = None) -> None:
    """Show an endpoint's current manifest."""
    from mlforge.deployment.manifest import read_manifest

    project = load_project(spec, home)
    m = read_manifest(project.storage, endpoint)
    if m is None:
        fail(f"endpoint {endpoint} has no deployment manifest yet")
        return
    s = m.summary()
    print(
        f"{endpoint}: revision {s.revision}, {s.strategy}, model {s.model}, created {s.created_at.isoformat()}"
    )
    for v in s.variants:
        print(f"  {v.line()}")
    for k, val in sorted(s.state.items()):
        print(f"  state.{k} = {val}")


@deploy_app.command(name="rollback")
def deploy_rollback(endpoint: str, spec: Spec = None, home: Home = None) -> None:
    """Make the previous manifest revision of an endpoint current again."""
    from mlforge.deployment.manifest import rollback

    project = load_project(spec, home)
    m = rollback(project.storage, endpoint)
    print(
        f"{endpoint}: rolled back; revision {m.revision} serves "
        + ", ".join(f"v{v.version} ({v.traffic}%)" for v in m.variants)
    )


@deploy_app.command(name="history")
def deploy_history(endpoint: str, spec: Spec = None, home: Home = None) -> None:
    """Every manifest revision of an endpoint: variants, traffic, and what decided each step."""
    from mlforge.deployment.manifest import history

    project = load_project(spec, home)
    revisions = history(project.storage, endpoint)
    if not revisions:
        fail(f"endpoint {endpoint} has no deployment manifest yet")
    for m in revisions:
        s = m.summary()
        print(s.line())
        if s.reason:
            print(f"      {s.reason}")


@deploy_app.command(name="traffic")
def deploy_traffic(endpoint: str, *shares: str, spec: Spec = None, home: Home = None) -> None:
    """Set the traffic split of an endpoint's existing variants (a new manifest revision).

    Parameters
    ----------
    shares
        ``variant=percent`` pairs, e.g. ``stable=75 canary=25``; answering variants must add up to 100.
    """
    from mlforge.deployment.manifest import apply_traffic
    from mlforge.errors import MLForgeError

    project = load_project(spec, home)
    traffic: dict[str, int] = {}
    for item in shares:
        name, _, pct = item.partition("=")
        if not name or not pct.strip().isdigit():
            fail(f"expected variant=percent, got {item!r}")
        traffic[name] = int(pct)
    if not traffic:
        fail("give at least one variant=percent")
    try:
        m = apply_traffic(project.storage, endpoint, traffic, "with mlforge deploy traffic")
    except (MLForgeError, ValueError) as exc:
        fail(str(exc))
        return
    print(
        f"{endpoint}: revision {m.revision} serves "
        + ", ".join(f"{v.name}=v{v.version} ({v.traffic}%)" for v in m.variants)
    )
