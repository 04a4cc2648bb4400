"""The `loadbay` command: run the server and workers, manage accounts, push files."""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadbay.config import Settings

app = typer.Typer(help="loadbay: a self-hosted bulk import service.", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts and their API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
console = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where SQLite and files live (default ./data)")
]
Url = Annotated[str, typer.Option("--url", envvar="LOADBAY_URL", help="The loadbay server")]
Key = Annotated[str, typer.Option("--key", envvar="LOADBAY_API_KEY", help="Your API key")]
FINAL = {"completed", "error", "cancelled", "cleared"}


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings


# server side ---------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    data_dir: DataDir = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker threads in this process")] = 2,
    demo: Annotated[bool, typer.Option("--demo", help="Create a demo account and print its key")] = False,
) -> None:
    """Run the HTTP server (migrating the database first) with in-process workers."""
    from loadbay.app import create_app
    from loadbay.http import server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(data_dir)
    application = create_app(settings, workers=workers, base_url=settings.base_url(host, port))
    if demo:
        _print_demo_key(application.state.service, settings, host, port)
    server.run(application, host, port, settings)


def _print_demo_key(service: Any, settings: Settings, host: str, port: int) -> None:
    """The demo account's key lives in the data dir, so every `make run` shows the same one."""
    path = settings.data_dir / "demo-api-key"
    if not path.exists():
        _account, key = service.create_account("demo")
        path.write_text(key + "\n")
        path.chmod(0o600)
    key = path.read_text().strip()
    console.print(f"\n[bold]loadbay[/] at http://{host}:{port}  (dashboard: /, API docs: /docs)")
    console.print(f"demo account API key: [bold green]{key}[/]")
    console.print(f'try: curl -H "X-Api-Key: {key}" http://{host}:{port}/v1/types\n')


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", help="Worker threads")] = 2,
    data_dir: DataDir = None,
) -> None:
    """Run extra workers in this process (share a PostgreSQL with the servers)."""
    from loadbay.core.metrics import serve_process_metrics
    from loadbay.core.runtime import Runtime
    from loadbay.core.worker import WorkerPool
    from loadbay.types import default_registry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(data_dir)
    rt = Runtime.build(settings, default_registry(), base_url=settings.base_url())
    pool = WorkerPool(rt, concurrency, kind="worker")
    if settings.worker_metrics_port:
        serve_process_metrics(settings.worker_metrics_port)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pool.stop.set())
    pool.start()
    console.print(f"loadbay worker: {concurrency} threads on {rt.db.engine.url.render_as_string()}")
    while not pool.stop.wait(1.0):
        pass
    pool.shutdown()
    rt.close()


@accounts_app.command("create")
def accounts_create(
    name: str,
    test: Annotated[bool, typer.Option("--test", help="A test account: its key makes test batches")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an account and print its API key (shown only this once)."""
    from loadbay.core.runtime import Runtime
    from loadbay.core.service import BatchService
    from loadbay.types import default_registry

    settings = _settings(data_dir)
    rt = Runtime.build(settings, default_registry(), base_url=settings.base_url())
    account, key = BatchService(rt).create_account(name, test=test)
    rt.close()
    if as_json:
        typer.echo(json.dumps({"id": account.id, "name": account.name, "test": account.test, "api_key": key}))
    else:
        typer.echo(f"account {account.id} ({account.name}{', test' if test else ''}) API key: {key}")


# client side ---------------------------------------------------------------


def _client(url: str, key: str) -> httpx.Client:
    if not key:
        raise typer.BadParameter("set --key or LOADBAY_API_KEY")
    return httpx.Client(base_url=url.rstrip("/"), headers={"X-Api-Key": key}, timeout=60.0)


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.is_error:
        try:
            body = response.json()
            detail = f"{body.get('code')}: {body.get('detail')}"
        except ValueError:
            detail = response.text
        console.print(f"[red]error[/] HTTP {response.status_code} {detail}")
        raise typer.Exit(2)
    result: dict[str, Any] = response.json()
    return result


_CONTENT_TYPES = {".csv": "text/csv", ".jsonl": "application/x-ndjson", ".ndjson": "application/x-ndjson"}


@app.command()
def push(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    type: Annotated[str, typer.Option("--type", help="Batch type, e.g. billing.customer")],
    job_id: Annotated[str | None, typer.Option("--job-id", help="Idempotency key")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the batch is final")] = False,
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
) -> None:
    """Upload FILE as a new batch and submit it."""
    with _client(url, key) as client:
        batch = _check(client.post("/v1/batches", json={"type": type, "job_id": job_id}))
        content_type = _CONTENT_TYPES.get(file.suffix.lower(), "application/json")
        with file.open("rb") as stream:
            _check(
                client.put(
                    f"/v1/batches/{batch['id']}/data",
                    params={"name": file.name},
                    content=_chunks(stream),
                    headers={"Content-Type": content_type},
                )
            )
        batch = _check(client.post(f"/v1/batches/{batch['id']}/submit"))
        typer.echo(f"batch {batch['id']} submitted")
        if wait:
            batch = _follow(client, batch)
            _summary(batch)
            raise typer.Exit(0 if batch["status"] == "completed" else 1)


def _chunks(stream: Any, size: int = 1 << 20) -> Any:
    while data := stream.read(size):
        yield data


def _follow(client: httpx.Client, batch: dict[str, Any]) -> dict[str, Any]:
    """Poll until the batch is final: a progress bar on a terminal, a line per change elsewhere."""
    report = _bar_reporter() if console.is_terminal else _line_reporter()
    with report as update:
        while batch["status"] not in FINAL:
            time.sleep(0.5)
            batch = _check(client.get(f"/v1/batches/{batch['id']}"))
            counts = batch["counts"]
            done = counts["invalid"] + counts["succeeded"] + counts["failed"] + counts["unprocessed"]
            update(batch["status"], done, counts["total"])
    return batch


Reporter = Callable[[str, int, int], None]


@contextmanager
def _bar_reporter() -> Iterator[Reporter]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=None)

        def update(status: str, done: int, total: int) -> None:
            progress.update(task, description=status, total=total or None, completed=done)

        yield update


@contextmanager
def _line_reporter() -> Iterator[Reporter]:
    last: list[tuple[str, int, int]] = []

    def update(status: str, done: int, total: int) -> None:
        if not last or last[-1] != (status, done, total):
            console.print(f"{status} {done}/{total}")
            last.append((status, done, total))

    yield update


def _summary(batch: dict[str, Any]) -> None:
    c = batch["counts"]
    typer.echo(
        f"batch {batch['id']} {batch['status']}"
        + (f" ({batch['outcome']})" if batch.get("outcome") else "")
        + f": {c['total']} records, {c['succeeded']} succeeded, {c['invalid']} invalid, "
        f"{c['failed']} failed, {c['unprocessed']} unprocessed"
    )
    if batch.get("error"):
        typer.echo(f"error {batch['error']['code']}: {batch['error']['message']}")


@app.command()
def status(batch_id: int, url: Url = "http://127.0.0.1:8000", key: Key = "") -> None:
    """Show a batch's status and counts."""
    with _client(url, key) as client:
        _summary(_check(client.get(f"/v1/batches/{batch_id}")))


@app.command()
def results(
    batch_id: int,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the result CSV")],
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
) -> None:
    """Download a batch's result CSV."""
    with _client(url, key) as client, client.stream("GET", f"/v1/batches/{batch_id}/results") as response:
        if response.is_error:
            response.read()
            _check(response)
        with output.open("wb") as out:
            for data in response.iter_bytes():
                out.write(data)
    typer.echo(f"wrote {output}")


# mail tracking -------------------------------------------------------------

tracking_app = typer.Typer(help="Mail tracking for the Click2Mail profile.", no_args_is_help=True)
app.add_typer(tracking_app, name="tracking")


@tracking_app.command("load")
def tracking_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    data_dir: DataDir = None,
) -> None:
    """Load a daily tracking feed (CSV: job_id, at, status, location, detail).

    Exit status: 0 when every row was stored (or already was), 1 when some rows were
    refused (unknown job, test account's job, bad value: each is listed), 2 when the
    file cannot be read at all.
    """
    from loadbay.core.runtime import Runtime
    from loadbay.errors import UnreadableData
    from loadbay.types import default_registry
    from loadbay.types.mail_tracking import load_tracking

    settings = _settings(data_dir)
    rt = Runtime.build(settings, default_registry(), base_url=settings.base_url())
    try:
        with file.open("rb") as stream:
            report = load_tracking(rt.db, stream)
    except UnreadableData as exc:
        console.print(f"[red]error[/] {exc.code}: {exc.message}")
        raise typer.Exit(2) from exc
    finally:
        rt.close()
    _tracking_report(report)
    raise typer.Exit(1 if report.refused_count else 0)


def _tracking_report(report: Any) -> None:
    for refusal in report.refused:
        where = f"row {refusal.row}" + (f" (job {refusal.job_id})" if refusal.job_id else "")
        console.print(f"{where}: {refusal.code}: {refusal.message}", markup=False)
    typer.echo(
        f"loaded {report.loaded} tracking events, skipped {report.duplicates} already stored, "
        f"refused {report.refused_count} rows"
    )


def main() -> None:
    app()
