"""The dashboard: pages a person runs imports from, served with every asset in the package.

The pages are rendered here (layout, forms, the record types and their rules); what belongs
to an account (batches, errors, downloads) is read by the page's own script from the native
API with the API key the person signed in with, kept in the tab's sessionStorage. Nothing
is loaded from another origin, and the Content-Security-Policy says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles

from loadbay import __version__
from loadbay.core.service import BatchService
from loadbay.core.types import BatchType
from loadbay.domain.lifecycle import Status
from loadbay.domain.webhooks import EVENT_TYPES
from loadbay.errors import NotFound, UnknownType
from loadbay.http.bodies import LimitedRoute

__all__ = ["router"]

router = APIRouter(include_in_schema=False, route_class=LimitedRoute)
_templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "web" / "templates"))
_static = StaticFiles(packages=[("loadbay", "web/static")])

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# Where a batch can be seen through the API profiles, by type: (profile, lookup path with
# {id}, {ref} or {n} (the N of catalog.userN)). The batch page shows where each batch can be
# looked up.
_EBILL = ("eBill", "/compat/ebill/rest/batchProcess?id={id}")
_PROFILE_VIEWS: dict[str, tuple[tuple[str, str], ...]] = {
    **dict.fromkeys(
        [
            "billing.customer",
            "billing.invoice",
            "billing.invoice_line",
            "billing.credit_memo",
            "billing.debit_memo",
            "billing.carry_forward",
            "billing.carry_forward_invoice",
            "billing.carry_forward_credit_memo",
            "billing.carry_forward_debit_memo",
        ],
        (_EBILL,),
    ),
    **dict.fromkeys(
        ["billing.write_off", "billing.payment"], (("Fusebill", "/compat/fusebill/v1/BulkApi/{id}"),)
    ),
    **dict.fromkeys(
        ["assets.external_asset", "assets.terminal_status"],
        (("Centrapay", "/compat/centrapay/api/batches/{ref}"),),
    ),
    **{
        f"catalog.user{n}": (("Alliant", f"/compat/alliant/api/Import/User{n}s/Batch/{{id}}"),)
        for n in range(1, 10)
    },
    "mail.job": (("Click2Mail", "/compat/click2mail/batches/{id}"),),
}


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    types = [t.name for t in request.app.state.service.batch_types()]
    context = {"version": __version__, "page": template.removesuffix(".html"), "types": types} | context
    return _templates.TemplateResponse(request, template, context, status_code, headers=_HEADERS)


# The statuses in the words of the batches' badges (static/js/ui.js, STATUS_TEXT): the status
# filter offers what the list shows.
_STATUS_TEXT = {
    Status.OPEN: "Waiting for data",
    Status.QUEUED: "Queued",
    Status.VALIDATING: "Validating",
    Status.VALIDATED: "Validated – waiting for you",
    Status.PROCESSING: "Importing",
    Status.COMPLETED: "Completed",
    Status.ERROR: "Could not be read",
    Status.CANCELLED: "Cancelled",
    Status.CLEARED: "Cleared",
}


@router.get("/", response_class=HTMLResponse)
def batches_page(request: Request) -> HTMLResponse:
    statuses = [(s.value, _STATUS_TEXT.get(s, s.value)) for s in Status]
    return _page(request, "batches.html", statuses=statuses)


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: str) -> HTMLResponse:
    if not (batch_id.isascii() and batch_id.isdigit() and len(batch_id) < 20 and 0 < int(batch_id) < 2**63):
        message = "There is no such batch: a batch's address is /batches/ and its number, e.g. /batches/12."
        return _page(request, "not_found.html", status_code=404, message=message)
    columns = _columns(_file_types(request))
    return _page(
        request,
        "batch.html",
        batch_id=int(batch_id),
        profile_views=_PROFILE_VIEWS,
        columns=columns,
        elsewhere=_elsewhere(request),
    )


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request) -> HTMLResponse:
    return _page(request, "webhooks.html", events=EVENT_TYPES)


@router.get("/new", response_class=HTMLResponse)
def new_import_page(request: Request) -> HTMLResponse:
    catalog = _file_types(request)
    return _page(
        request, "new.html", catalog=catalog, columns=_columns(catalog), elsewhere=_elsewhere(request)
    )


def _file_types(request: Request) -> list[Entry]:
    """The record types a person can send a file of from the dashboard."""
    return [e for e in map(_entry, request.app.state.service.batch_types()) if e.takes_file]


def _elsewhere(request: Request) -> dict[str, dict[str, str]]:
    """How the records of each type the new-import page does not take are sent instead, said
    where the dashboard would link to that page (which would show another type), by type:
    `text`, and `href` and `label` of the page that describes the type (`BatchType.docs`)."""
    service: BatchService = request.app.state.service
    return {t.name: _sent_elsewhere(t) for t in service.batch_types() if not _takes_file(t)}


def _sent_elsewhere(batch_type: BatchType) -> dict[str, str]:
    docs = batch_type.docs
    return {"text": docs.how_sent or _how_sent(batch_type), "href": docs.path, "label": docs.title}


def _how_sent(batch_type: BatchType) -> str:
    """How a type's records are sent, said from what it declares."""
    if batch_type.generates:
        return (
            f"{batch_type.name} records are made by loadbay itself, not read from a file, so there "
            "is no file to fix: once their cause is fixed, start a new batch through the API."
        )
    needs = ", ".join(batch_type.attachments.values())
    return (
        f"{batch_type.name} batches need {needs} before their records, which this dashboard "
        "does not send: send them through the API."
    )


def _columns(catalog: list[Entry]) -> dict[str, dict[str, Any]]:
    """What the pages' scripts check a file's header row against, by type (static/js/files.js)."""
    return {
        e.name: {"columns": [c.name for c in e.columns], "required": e.required, "one_of": e.one_of}
        for e in catalog
    }


@router.get("/types/{name}/template.csv")
def csv_template(request: Request, name: str) -> Response:
    """A CSV file with the type's header row: the file a person fills in."""
    batch_type = _type(request, name)
    headers = {"Content-Disposition": f'attachment; filename="{name}-template.csv"'}
    body = ",".join(batch_type.columns().names) + "\r\n"
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"])
async def static_file(request: Request, path: str) -> Response:
    response = await _static.get_response(path, request.scope)
    response.headers["Cache-Control"] = "no-cache"  # revalidated (ETag): modules import each other
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _type(request: Request, name: str) -> BatchType:
    service: BatchService = request.app.state.service
    try:
        return service.batch_type(name)
    except UnknownType as exc:
        raise NotFound(exc.message) from None


# the record types as the new-import page explains them -------------------------------------


# What a field validator on a column of one of these names checks, in words (the JSON Schema
# shows a plain string): used only when the type's model has a validator on that column.
_CHECKED = {
    "email": "an email address",
    "country": "a two-letter country code (ISO 3166), e.g. US",
    "currency": "a three-letter currency code (ISO 4217), e.g. USD",
}
# Columns of which each record needs one or the other: a rule across columns (a model
# validator's REQUIRED), which neither the JSON Schema nor Columns.required shows.
_ONE_OF: dict[str, tuple[str, ...]] = {
    "billing.payment": ("customer_id", "customer_number"),
    "billing.write_off": ("invoice_id", "invoice_number"),
}
_HUGE = 1e15  # bounds past this are the database's (BIGINT), not a rule a person needs


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    required: bool
    rule: str
    or_else: tuple[str, ...] = ()  # the other columns that may stand in for this one


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    description: str
    key: str
    columns: list[Column]
    takes_file: bool
    children: str | None  # what child batches of this type's batches hold, if any
    one_of: tuple[str, ...] = ()  # each record needs at least one of these columns

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def domain(self) -> str:
        """What the type's name starts with (billing, assets, …): the type picker's groups."""
        return self.name.partition(".")[0]


def _entry(batch_type: BatchType) -> Entry:
    schema = batch_type.json_schema()
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(batch_type.columns().required)
    one_of = _ONE_OF.get(batch_type.name, ())
    checked = _checked_fields(batch_type)

    def column(name: str) -> Column:
        rule = _rule(properties.get(name, {}), _CHECKED.get(name) if name in checked else None)
        rule = _with_places(rule, _places(batch_type, name))
        or_else = tuple(o for o in one_of if o != name) if name in one_of else ()
        return Column(name, name in required, rule, or_else)

    columns = [column(n) for n in batch_type.columns().names]
    totals = batch_type.child_totals
    children = f"{totals.children_are} ({totals.child_type}), sent as child batches" if totals else None
    return Entry(
        batch_type.name,
        batch_type.description,
        batch_type.key,
        columns,
        _takes_file(batch_type),
        children,
        one_of,
    )


def _takes_file(batch_type: BatchType) -> bool:
    """Whether a person can send a file of the type's records from the dashboard: not of a
    type that makes its own records or needs an attachment (a PDF) first."""
    return not batch_type.generates and not batch_type.attachments


def _checked_fields(batch_type: BatchType) -> set[str]:
    """The fields a field validator of the type's model checks."""
    validators = batch_type.model.__pydantic_decorators__.field_validators.values()
    return {name for validator in validators for name in validator.info.fields}


def _places(batch_type: BatchType, name: str) -> int | None:
    """The decimal places a number column allows, when its field says."""
    field = batch_type.model.model_fields.get(name)
    for item in field.metadata if field else ():
        if isinstance(places := getattr(item, "decimal_places", None), int):
            return places
    return None


def _rule(prop: dict[str, Any], checked: str | None = None) -> str:
    """A column's rule in words, from its JSON Schema (`checked`: what a validator checks, in
    words)."""
    kinds = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    kind = kinds[0] if kinds else prop
    words = _kind(kind, {k.get("type") for k in kinds})
    if checked:
        words = checked + (f", at most {kind['maxLength']} characters" if "maxLength" in kind else "")
    if "default" in prop and prop["default"] not in (None, ""):
        words += f"; default {prop['default']}"
    return words


def _with_places(rule: str, places: int | None) -> str:
    """A number's rule with the decimal places it may have (before its default)."""
    if places is None or not rule.startswith("a number"):
        return rule
    head, sep, default = rule.partition("; default")
    return f"{head}, at most {places} decimal place{'' if places == 1 else 's'}{sep}{default}"


def _kind(prop: dict[str, Any], types: set[Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(str(v) for v in prop["enum"])
    if types >= {"number", "string"} or prop.get("type") == "number":
        return "a number" + _bounds(prop)
    if prop.get("type") == "integer":
        return "a whole number" + _bounds(prop)
    if prop.get("type") == "boolean":
        return "true or false"
    if prop.get("format") == "date":
        return "a date, YYYY-MM-DD"
    if prop.get("format") == "date-time":
        return "a date and time, e.g. 2026-03-01T09:30:00Z"
    if prop.get("type") in ("object", "array") or "$ref" in prop:
        return "nested values (JSON files only)"
    if "maxLength" in prop:
        return f"text, at most {prop['maxLength']} characters"
    return "text"


def _bounds(prop: dict[str, Any]) -> str:
    if "exclusiveMinimum" in prop and abs(prop["exclusiveMinimum"]) < _HUGE:
        return f", more than {prop['exclusiveMinimum']:g}"
    if "minimum" in prop and abs(prop["minimum"]) < _HUGE:
        return f", at least {prop['minimum']:g}"
    return ""
