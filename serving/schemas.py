"""Request and response bodies of the serving API (pydantic models).

:class:`PredictRequest` is the only validator of a prediction request: the FastAPI route and the
fast path (:mod:`serving.fastpath`) both validate with it, and its fields hold the limits (batch
size, id length) — nowhere else defines them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_BATCH = 1000  # rows of one request
MAX_ID_CHARS = 256  # longest entity id / request_id accepted

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class PredictRequest(BaseModel):
    """Entity ids (features from the online store) or explicit feature rows: exactly one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"entity_ids": ["00003", "00010"]}, {"features": [{"days_since_last": 12.0}]}]
        },
    )

    entity_ids: list[EntityId] | None = Field(
        None, min_length=1, max_length=MAX_BATCH, description="Entity ids to score, 1..1000."
    )
    features: list[dict[str, Any]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_BATCH,
        description=(
            "Rows of {feature name: number or null}, every feature of the endpoint's model, 1..1000; "
            "a row may also carry the entity key (e.g. customer_id) for routing and the response."
        ),
    )
    request_id: Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)] | None = Field(
        None, description="Routes explicit rows without an entity key by '<request_id>:<row index>'."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.entity_ids is None) == (self.features is None):
            raise ValueError("give exactly one of 'entity_ids' or 'features'")
        return self


class Prediction(BaseModel):
    """One scored row."""

    entity_id: str | None
    score: float | None = Field(
        description="Binary: positive-class probability; regression: the prediction; multiclass: "
        "the probability of `label`. Null when the entity was not found."
    )
    label: int | None = Field(
        None,
        description="Binary: 1 when score >= the version's threshold; multiclass: the most probable "
        "class. Absent for regression.",
    )
    probabilities: list[float] | None = Field(None, description="Multiclass: every class's probability.")
    found: bool
    model_version: int
    variant: str


class PredictResponse(BaseModel):
    """The answer of POST /predict/{endpoint}, rows in request order."""

    endpoint: str
    model: str
    predictions: list[Prediction]
    revision: int


class ErrorBody(BaseModel):
    """An error with a message a client can act on."""

    detail: str


class TrafficRequest(BaseModel):
    """New traffic shares (percent) of existing variants; the answering ones must add up to 100."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"traffic": {"stable": 75, "canary": 25}}]}
    )

    traffic: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(min_length=1)


class AdminResult(BaseModel):
    """What an admin action left the endpoint serving."""

    endpoint: str
    revision: int
    variants: list[dict[str, Any]]
    loaded_revision: int | None = Field(None, description="Revision this worker serves now.")
