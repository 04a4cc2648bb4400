"""The dashboard: a page that shows the service and lets a user look at batches with their key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from loadbay import __version__
from loadbay.api.bodies import LimitedRoute

__all__ = ["router"]

router = APIRouter(include_in_schema=False, route_class=LimitedRoute)
_templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "web" / "templates"))


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    types = [t.name for t in request.app.state.service.rt.types]
    return _templates.TemplateResponse(request, "dashboard.html", {"version": __version__, "types": types})
