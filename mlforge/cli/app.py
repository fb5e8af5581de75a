"""The `mlforge` command — the composition root: it may import every layer, lazily.

Only cyclopts is imported at module level so that `mlforge --help` answers fast; each command
imports what it needs.
"""

from __future__ import annotations

from cyclopts import App

from mlforge.cli import data, demo, deploy, export, init, models, monitor, project, train
from mlforge.cli.options import fail

app = App(
    name="mlforge",
    help="MLForge: an ML platform as a Dagster code location. One mlforge.yaml, every lifecycle stage an asset.",
)
for command in (
    init.init,
    project.validate,
    project.quickstart,
    train.train,
    project.serve,
    project.ui,
    monitor.monitor,
    export.export,
):
    app.command(command)
app.command(deploy.deploy_app)
app.command(models.models_app)
app.command(models.experiments_app)
app.command(data.data_app)
app.command(demo.demo_app)


def main() -> None:
    """Console-script entry point."""
    import warnings

    # Dagster's supersession/beta notices are for library authors, not for `mlforge` users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*(superseded|beta|preview).*")
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from mlforge.errors import MLForgeError

    # Every command's own errors end here: one line naming what is wrong, exit code 2.
    try:
        app()
    except MLForgeError as exc:
        fail(str(exc))
