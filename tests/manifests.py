"""Hand-made deployment manifests for tests that decide on them without serving anything."""

from __future__ import annotations

from typing import Any

from mlforge.deployment.manifest import Manifest, Variant
from mlforge.deployment.state import VariantRole

ENDPOINT = "churn-api"


def variant(
    version: int, name: VariantRole | str = VariantRole.CHAMPION, traffic: int = 100, shadow: bool = False
) -> Variant:
    """Model `churn` version `version` in role `name` (a booster URI that is never loaded)."""
    return Variant(
        name=name,
        model_name="churn",
        version=version,
        booster_uri=f"file:///models/churn/{version}/model.ubj",
        traffic=traffic,
        shadow=shadow,
    )


def manifest(variants: list[Variant], strategy: str = "blue_green", **kw: Any) -> Manifest:
    """A manifest of the example's churn-api endpoint with `variants` (fields overridable by `kw`)."""
    fields: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "model": "churn",
        "strategy": strategy,
        "feature_service": "churn_features",
        "feature_names": ["f1", "f2"],
        "entity_key": "customer_id",
        "views": ["customer_activity"],
        "variants": variants,
    }
    return Manifest(**{**fields, **kw})
