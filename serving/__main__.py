"""``python -m serving``: the same as ``mlforge serve`` (its options, its start-up)."""

from cyclopts import App

from mlforge.cli.options import fail
from mlforge.cli.project import serve
from mlforge.errors import MLForgeError

app = App(name="python -m serving", help="Serve the deployed endpoints over HTTP (POST /predict/{endpoint}).")
app.default(serve)

try:
    app()
except MLForgeError as exc:
    fail(str(exc))
