"""`mlforge deploy …`: inspect, roll back and re-weight endpoint deployments."""

from __future__ import annotations

from cyclopts import App

from mlforge.cli.options import Home, Spec, fail, load_project

deploy_app = App(name="deploy", help="Inspect and roll back endpoint deployments.")


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
