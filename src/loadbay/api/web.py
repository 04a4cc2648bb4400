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
from loadbay.api.bodies import LimitedRoute
from loadbay.core.lifecycle import Status
from loadbay.core.service import BatchService
from loadbay.core.types import BatchType
from loadbay.errors import NotFound, UnknownType

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
# {id}, {ref} or {n} (the N of catalog.userN)). Which profile, if any, created a batch is not
# recorded by the core; the batch page shows where each batch can be looked up.
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


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    types = sorted(t.name for t in request.app.state.service.rt.types)
    context = {"version": __version__, "page": template.removesuffix(".html"), "types": types} | context
    return _templates.TemplateResponse(request, template, context, headers=_HEADERS)


@router.get("/", response_class=HTMLResponse)
def batches_page(request: Request) -> HTMLResponse:
    return _page(request, "batches.html", statuses=[s.value for s in Status])


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: int) -> HTMLResponse:
    return _page(request, "batch.html", batch_id=batch_id, profile_views=_PROFILE_VIEWS)


@router.get("/new", response_class=HTMLResponse)
def new_import_page(request: Request) -> HTMLResponse:
    every = [_entry(t) for t in sorted(request.app.state.service.rt.types, key=lambda t: t.name)]
    catalog = [e for e in every if e.takes_file]
    columns = {e.name: {"columns": [c.name for c in e.columns], "required": e.required} for e in catalog}
    return _page(request, "new.html", catalog=catalog, columns=columns)


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


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    required: bool
    rule: str


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    description: str
    key: str
    columns: list[Column]
    takes_file: bool
    children: str | None  # what child batches of this type's batches hold, if any

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def _entry(batch_type: BatchType) -> Entry:
    schema = batch_type.json_schema()
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(batch_type.columns().required)
    columns = [Column(n, n in required, _rule(properties.get(n, {}))) for n in batch_type.columns().names]
    totals = batch_type.child_totals
    children = f"{totals.children_are} ({totals.child_type}), sent as child batches" if totals else None
    takes_file = not batch_type.generates and not batch_type.attachments
    return Entry(batch_type.name, batch_type.description, batch_type.key, columns, takes_file, children)


def _rule(prop: dict[str, Any]) -> str:
    """A column's rule in words, from its JSON Schema."""
    kinds = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    words = _kind(kinds[0] if kinds else prop, {k.get("type") for k in kinds})
    if "default" in prop and prop["default"] not in (None, ""):
        words += f"; default {prop['default']}"
    return words


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
    if "exclusiveMinimum" in prop:
        return f", more than {prop['exclusiveMinimum']:g}"
    if "minimum" in prop:
        return f", at least {prop['minimum']:g}"
    return ""
