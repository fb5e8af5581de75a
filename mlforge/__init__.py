"""MLForge core library. `from mlforge import MLForgeClient` for the SDK (imported lazily)."""

from __future__ import annotations

from typing import Any

__all__ = ["MLForgeClient"]


def __getattr__(name: str) -> Any:
    if name == "MLForgeClient":
        from mlforge.sdk.client import MLForgeClient

        return MLForgeClient
    raise AttributeError(name)
