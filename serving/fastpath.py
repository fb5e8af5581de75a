"""The pure-ASGI fast path of ``POST /predict/{endpoint}``, in front of FastAPI.

FastAPI's request machinery (middleware layers, dependency solving, response wrapping) cost about
as much CPU as the prediction itself. :class:`ServingApp` answers a ``POST /predict/{endpoint}``
with ``content-type: application/json`` itself: it validates the body with the same pydantic
model as the route (:class:`serving.schemas.PredictRequest`, from the JSON bytes) and answers
through :func:`serving.predict.answer_predict`, the code the route calls — same statuses, same
bytes. A body the model rejects goes to FastAPI unchanged (replayed), whose validation writes the
422 naming the field; so does everything else (another method, path or content type).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError

from serving.predict import answer_predict
from serving.schemas import PredictRequest
from serving.state import ServingState

PREDICT_PREFIX = "/predict/"
_JSON_HEADERS = (b"content-type", b"application/json")


def parse_predict_body(body: bytes) -> PredictRequest | None:
    """The request of a valid ``PredictRequest`` body, else None (FastAPI then explains why)."""
    try:
        return PredictRequest.model_validate_json(body)
    except ValidationError:
        return None


class ServingApp(FastAPI):
    """FastAPI, plus a thin ASGI fast path for valid ``POST /predict/{endpoint}`` requests.

    The FastAPI route stays registered: OpenAPI documents it and it answers whatever the fast
    path passes on.
    """

    serving_state: ServingState | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state = self.serving_state
        if (
            state is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(PREDICT_PREFIX)
            or scope.get("root_path")
            or self.root_path
        ):
            await super().__call__(scope, receive, send)
            return
        endpoint = scope["path"][len(PREDICT_PREFIX) :]
        json_type = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                json_type = value.split(b";", 1)[0].strip() == b"application/json"
                break
        if not endpoint or "/" in endpoint or not json_type:
            await super().__call__(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        request = parse_predict_body(body)
        if request is None:
            replay = [{"type": "http.request", "body": body, "more_body": False}]

            async def again() -> Any:
                return replay.pop() if replay else await receive()

            await super().__call__(scope, again, send)
            return
        status, content = await answer_predict(
            state, endpoint, request.entity_ids, request.features, request.request_id
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(content)).encode()), _JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": content})
