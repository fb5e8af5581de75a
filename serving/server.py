"""Running the server: uvicorn options, several workers and their shared metrics directory.

``mlforge serve`` and ``python -m serving`` both end in :func:`run`. With several workers each
one builds its app from the environment (:func:`app_from_env`, a uvicorn factory) and loads the
endpoints itself; the parent process owns the ``PROMETHEUS_MULTIPROC_DIR`` the workers' metrics
share (:func:`serving.metrics.multiprocess_dir`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mlforge.config.project import Project
from mlforge.config.settings import env_name, get_settings


def app_from_env() -> FastAPI:
    """The app for `$MLFORGE_SPEC` / `$MLFORGE_HOME` (uvicorn factory, for several workers)."""
    from serving.app import create_app

    settings = get_settings()
    project = Project.load(settings.spec, state_dir=settings.home)
    return create_app(project, reload_interval_s=settings.reload_interval_s)


def run(
    project_spec_path: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    home: str | Path | None = None,
    reload_interval_s: float = 2.0,
) -> None:
    """Serve with uvicorn; several workers each load the endpoints themselves.

    uvicorn's access log is off unless ``MLFORGE_ACCESS_LOG=on``: it cost ~150 µs of CPU per
    request (a third of a one-entity prediction), and the prediction log and ``/metrics`` record
    every prediction request anyway.
    """
    import uvicorn

    access_log = bool(get_settings().access_log)
    loop, http = _event_loop_and_parser()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": _log_config(),
        "access_log": access_log,
        "loop": loop,
        "http": http,
    }
    if workers > 1:
        import logging.config

        from serving.metrics import multiprocess_dir

        logging.config.dictConfig(options["log_config"])  # the parent's own lines (metrics dir)
        if project_spec_path is not None:
            os.environ[env_name("spec")] = str(Path(project_spec_path).resolve())
        if home is not None:
            os.environ[env_name("home")] = str(Path(home).resolve())
        os.environ[env_name("reload_interval_s")] = str(reload_interval_s)
        with multiprocess_dir():  # before the workers start: they inherit the variable
            uvicorn.run("serving.server:app_from_env", factory=True, workers=workers, **options)
        return
    from serving.app import create_app

    project = Project.load(project_spec_path, state_dir=home)
    uvicorn.run(create_app(project, reload_interval_s), **options)


def _event_loop_and_parser() -> tuple[str, str]:
    """uvloop and httptools when installed (uvicorn's fastest pair), else uvicorn's defaults."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "auto"
    http = "httptools" if importlib.util.find_spec("httptools") else "auto"
    return loop, http


def _log_config() -> dict[str, Any]:
    """uvicorn's logging config, plus our own loggers (swaps at INFO, load failures at WARNING)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlforge"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
