"""The native API's webhooks under /v1/webhooks: an account's endpoints, their secrets and
their delivery logs (see loadbay.core.webhooks and loadbay.core.delivery)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic.json_schema import SkipJsonSchema

from loadbay.api.schemas import Page, Text
from loadbay.core.service import BatchService
from loadbay.core.webhooks import EndpointChanges, Webhooks
from loadbay.domain.models import Account
from loadbay.domain.webhooks import Delivery, Endpoint
from loadbay.http.deps import current_account, the_service
from loadbay.http.docs import keyed
from loadbay.http.jsonroute import JsonRoute
from loadbay.http.problems import problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["webhooks"], route_class=JsonRoute)

Caller = Annotated[Account, Depends(keyed(current_account))]
EventName = Literal["batch.validated", "batch.completed", "batch.failed", "batch.cancelled"]
Url = Annotated[
    Text, Field(max_length=2000, description="Where events are POSTed: an http(s) URL of a public address")
]
Description = Annotated[Text, Field(max_length=500)]


async def _webhooks(service: Annotated[BatchService, Depends(the_service)]) -> Webhooks:
    return service.webhooks


Hooks = Annotated[Webhooks, Depends(_webhooks)]


class CreateWebhook(BaseModel):
    """Body of `POST /v1/webhooks`."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    events: list[EventName] | None = Field(default=None, description="The events it takes (default: all)")
    enabled: StrictBool = True
    description: Description | None = None


class UpdateWebhook(BaseModel):
    """Body of `PATCH /v1/webhooks/{id}`: what it names changes, the rest stays."""

    model_config = ConfigDict(extra="forbid")

    url: Url | SkipJsonSchema[None] = None
    events: list[EventName] | SkipJsonSchema[None] = None
    enabled: StrictBool | SkipJsonSchema[None] = Field(
        default=None, description="true again clears disabled_reason and failing_since"
    )
    description: Description | None = Field(default=None, description="null clears it")

    @field_validator("url", "events", "enabled")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """`url`, `events` and `enabled` take a value, or are left out (`null` changed nothing)."""
        if value is None:
            raise ValueError("cannot be null: send a value, or leave it out to keep it as it is")
        return value


class WebhookOut(BaseModel):
    id: int
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why loadbay disabled it: every attempt failed for LOADBAY_WEBHOOK_DISABLE_AFTER seconds"
    )
    failing_since: datetime | None = Field(description="Every attempt since then has failed")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            events=list(endpoint.events),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            failing_since=endpoint.failing_since,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookSecretOut(WebhookOut):
    secret: str = Field(description="whsec_…: the signing secret, shown here only (create and rotate)")

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookSecretOut:
        return cls(**WebhookOut.of(endpoint).model_dump(), secret=endpoint.secret)


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    result: str = Field(description="sending, delivered, failed or interrupted (its worker stopped)")
    status_code: int | None = Field(description="The answer's HTTP status; null: no answer")
    error: str | None
    latency_ms: int | None
    response: str | None = Field(description="The answer's first 1,024 bytes")


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="The webhook-id header, the same on every attempt")
    event: str
    batch_id: int
    status: str = Field(description="pending, delivered or failed (retries ran out)")
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=delivery.message_id,
            event=delivery.event,
            batch_id=delivery.batch_id,
            status=delivery.status,
            attempts=[AttemptOut(**_fields(a)) for a in delivery.log],
            next_attempt_at=delivery.next_attempt_at,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
        )


# Request examples (the OpenAPI document's; Swagger UI offers them in "Try it out").
CREATE_EXAMPLES: dict[str, Any] = {
    "some": {
        "summary": "An endpoint for the batches that end",
        "value": {
            "url": "https://example.com/loadbay-events",
            "events": ["batch.completed", "batch.failed"],
            "description": "CRM sync",
        },
    },
    "all": {"summary": "Every event", "value": {"url": "https://example.com/loadbay-events"}},
}
UPDATE_EXAMPLES: dict[str, Any] = {
    "enable": {"summary": "Enable it again (after loadbay disabled it)", "value": {"enabled": True}},
    "events": {"summary": "Other events", "value": {"events": ["batch.validated", "batch.completed"]}},
}


def _fields(attempt: object) -> dict[str, object]:
    return {name: getattr(attempt, name) for name in AttemptOut.model_fields}


# What each operation answers besides its result, as problems (see http.problems).
_NOT_FOUND = {404: "No such webhook endpoint (or delivery) for this API key (`NOT_FOUND`)"}
_ONE = problem_responses(400, 401, 404, 503, said=_NOT_FOUND)
_BAD_BODY = (
    "`INVALID_WEBHOOK_URL`: not an http(s) URL of a public address (or one LOADBAY_FETCH_ALLOW "
    "permits); `INVALID_EVENT`: no event named; `INVALID_INPUT`: `errors` names each field"
)


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookSecretOut,
    response_description="The new endpoint, with its secret",
    responses=problem_responses(
        400,
        401,
        409,
        413,
        503,
        said={400: _BAD_BODY, 409: "`TOO_MANY_WEBHOOKS`: the account has as many endpoints as it may"},
    ),
)
def create_webhook(
    body: Annotated[CreateWebhook, Body(openapi_examples=CREATE_EXAMPLES)], hooks: Hooks, account: Caller
) -> WebhookSecretOut:
    """A new endpoint; the answer holds its signing secret, which is not shown again."""
    made = hooks.create(account, body.url, body.events, enabled=body.enabled, description=body.description)
    return WebhookSecretOut.of(made)


@router.get("/webhooks", response_model=Page[WebhookOut], responses=problem_responses(401, 503))
def list_webhooks(hooks: Hooks, account: Caller) -> Page[WebhookOut]:
    return Page[WebhookOut](data=[WebhookOut.of(e) for e in hooks.endpoints(account)])


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, responses=_ONE)
def get_webhook(webhook_id: int, hooks: Hooks, account: Caller) -> WebhookOut:
    return WebhookOut.of(hooks.get(account, webhook_id))


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses=problem_responses(400, 401, 404, 413, 503, said=_NOT_FOUND | {400: _BAD_BODY}),
)
def update_webhook(
    webhook_id: int,
    body: Annotated[UpdateWebhook, Body(openapi_examples=UPDATE_EXAMPLES)],
    hooks: Hooks,
    account: Caller,
) -> WebhookOut:
    changes = EndpointChanges(
        body.url, body.events, body.enabled, body.description, "description" in body.model_fields_set
    )
    return WebhookOut.of(hooks.update(account, webhook_id, changes))


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    response_class=Response,
    response_description="Deleted, with its deliveries",
    responses=_ONE,
)
def delete_webhook(webhook_id: int, hooks: Hooks, account: Caller) -> Response:
    hooks.delete(account, webhook_id)
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/rotate", response_model=WebhookSecretOut, responses=_ONE)
def rotate_secret(webhook_id: int, hooks: Hooks, account: Caller) -> WebhookSecretOut:
    """A new signing secret, used from the next attempt on (the old one no longer is)."""
    return WebhookSecretOut.of(hooks.rotate(account, webhook_id))


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryOut], responses=_ONE)
def list_deliveries(
    webhook_id: int,
    hooks: Hooks,
    account: Caller,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first, each with every attempt; `next_cursor` pages on."""
    found = hooks.deliveries(account, webhook_id, cursor, limit)
    next_cursor = str(found[-1].id) if len(found) == limit else None
    return Page[DeliveryOut](data=[DeliveryOut.of(d) for d in found], next_cursor=next_cursor)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut, responses=_ONE
)
def redeliver(webhook_id: int, delivery_id: int, hooks: Hooks, account: Caller) -> DeliveryOut:
    """Send the delivery again (the same webhook-id and body), retried like a new event."""
    return DeliveryOut.of(hooks.redeliver(account, webhook_id, delivery_id))
