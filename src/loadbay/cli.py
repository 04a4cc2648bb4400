"""The `loadbay` command: run the server and workers, manage accounts, and use a server as a
client (push files, follow, list and inspect batches, read their errors and results).

The client commands speak HTTP only, through loadbay.client, and end with one of ExitCode:
the one place those numbers are chosen; `loadbay --help` and docs/cli.md show them.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from loadbay import __version__
from loadbay.client import FINAL, Batch, Client, Refused, RetryPolicy, Unreachable, settled
from loadbay.config import Settings
from loadbay.domain.text import many
from loadbay.errors import SchemaTooNew


class ExitCode(IntEnum):
    """How a client command ends (serve, worker, accounts and tracking have their own)."""

    OK = 0
    USAGE = 2
    RECORDS_REFUSED = 3
    BATCH_FAILED = 4
    REQUEST_REFUSED = 5
    UNREACHABLE = 6
    INTERRUPTED = 130


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done (a batch followed to its end: every record succeeded)",
    ExitCode.USAGE: "wrong usage, no API key, a file loadbay does not read or cannot write",
    ExitCode.RECORDS_REFUSED: "batch completed with records refused (invalid, failed, unprocessed)",
    ExitCode.BATCH_FAILED: "batch ended in error, or was cancelled or cleared",
    ExitCode.REQUEST_REFUSED: "request refused by the server (its code and detail are printed)",
    ExitCode.UNREACHABLE: "server unreachable, even after retrying for --retry-for seconds",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); a batch being followed goes on",
}


def _codes(*codes: ExitCode) -> str:
    lines = [f"  {int(code):>3}  {EXIT_MEANINGS[code]}" for code in codes]
    return "[b]Exit status[/b]\n" + "\n".join(lines)


_REQUEST = (ExitCode.OK, ExitCode.USAGE, ExitCode.REQUEST_REFUSED, ExitCode.UNREACHABLE)
_FOLLOW = (
    ExitCode.OK,
    ExitCode.USAGE,
    ExitCode.RECORDS_REFUSED,
    ExitCode.BATCH_FAILED,
    ExitCode.REQUEST_REFUSED,
    ExitCode.UNREACHABLE,
    ExitCode.INTERRUPTED,
)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A usage error as one line on stderr, for a reader piping it, with its exit status (Typer
    draws a box of several)."""
    try:
        yield
    except typer.TyperException as exc:  # (click's errors, which Typer carries)
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise  # (the help itself)
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "loadbay"
        message = " ".join(exc.format_message().split())
        Console(stderr=True, soft_wrap=True).print(
            f"usage error: {message} (see `{command} --help`)", markup=False, highlight=False
        )
        raise typer.Exit(exc.exit_code) from None
    except SchemaTooNew as exc:  # (serve, worker, doctor's neighbours: the process cannot start)
        Console(stderr=True, soft_wrap=True).print(f"loadbay: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None


class _Commands(TyperGroup):
    """loadbay's commands, each usage error on one line."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:  # (a click Context)
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Commands,
    help="loadbay: a self-hosted bulk import service. Client commands read the server's address "
    "from LOADBAY_URL (or --url) and the API key from LOADBAY_API_KEY (or --key).",
    epilog=_codes(*ExitCode),
    no_args_is_help=True,
)
accounts_app = typer.Typer(help="Manage accounts and their API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
# Progress, notes and errors go to stderr, each on one line however long (soft wrap): stdout
# is kept for what a command was asked for.
console = Console(stderr=True, soft_wrap=True)
# Tables: as wide as the terminal; into a pipe or file, as wide as their rows (up to 200).
out = Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=200)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where SQLite and files live (default ./data)")
]
Url = Annotated[str, typer.Option("--url", envvar="LOADBAY_URL", help="The loadbay server")]
Key = Annotated[str, typer.Option("--key", envvar="LOADBAY_API_KEY", help="Your API key", show_default=False)]
RetryFor = Annotated[
    float,
    typer.Option(
        "--retry-for",
        envvar="LOADBAY_RETRY_FOR",
        min=0,
        help="Seconds to keep trying while the server does not answer (each outage)",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
BatchId = Annotated[int, typer.Argument(min=1, help="The batch's id", show_default=False)]
DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_SECONDS = 120.0
POLL_SECONDS = (0.1, 1.0)  # a batch is polled at once, then less and less often, up to once a second


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings


def _start_logging(settings: Settings) -> None:
    """This process's log lines, at LOADBAY_LOG_LEVEL and above, to stderr."""
    line = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=settings.log_level.upper(), format=line)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loadbay {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """The options before any command."""


# server side ---------------------------------------------------------------


@app.command(short_help="Run the HTTP server and its worker processes (`--workers 0`: an API-only server).")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    data_dir: DataDir = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Worker processes, each with one worker thread (default: one per core; 0: none)",
            show_default=False,
        ),
    ] = None,
    worker_threads: Annotated[
        int, typer.Option("--worker-threads", min=0, help="Worker threads inside this process")
    ] = 0,
    demo: Annotated[bool, typer.Option("--demo", help="Create a demo account and print its key")] = False,
) -> None:
    """Run the HTTP server (migrating the database first) and its worker processes: one that
    dies is started again, and all stop with the server. `--workers 0`: an API-only server."""
    from loadbay.app import create_app
    from loadbay.http import server
    from loadbay.supervisor import WorkerProcesses

    settings = _settings(data_dir)
    _start_logging(settings)
    base_url = settings.base_url(host, port)
    count = _default_worker_processes() if workers is None else workers
    processes = WorkerProcesses(count, data_dir=data_dir, base_url=base_url, metrics_host=host)
    application = create_app(settings, workers=worker_threads, base_url=base_url, processes=processes)
    if demo:
        _print_demo_key(application.state.service, settings, host, port)
    server.run(application, host, port, settings)


def _default_worker_processes() -> int:
    """One worker process per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # (not on Linux)
        return os.cpu_count() or 1


def _print_demo_key(service: Any, settings: Settings, host: str, port: int) -> None:
    """The demo account's key lives in the data dir, so every `make run` shows the same one;
    a key the database does not know (the database was made anew, the file kept: every
    request with the key printed was a 401) is replaced by a new demo account's."""
    from loadbay.errors import Unauthorized

    path = settings.data_dir / "demo-api-key"
    key = path.read_text().strip() if path.exists() else ""
    try:
        service.authenticate(key)
    except Unauthorized:
        _account, key = service.create_account("demo")
        path.write_text(key + "\n")
        path.chmod(0o600)
    console.print(f"\n[bold]loadbay[/] at http://{host}:{port}  (dashboard: /, API docs: /docs)")
    console.print(f"demo account API key: [bold green]{key}[/]")
    console.print(f'try: curl -H "X-Api-Key: {key}" http://{host}:{port}/v1/types\n')


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", help="Worker threads")] = 2,
    data_dir: DataDir = None,
) -> None:
    """Run extra workers in this process (share a PostgreSQL with the servers)."""
    from loadbay.core.metrics import MetricsPortError, serve_process_metrics
    from loadbay.core.runtime import Runtime
    from loadbay.core.worker import WorkerPool
    from loadbay.memory import fewer_collections, return_big_buffers
    from loadbay.types import default_registry

    settings = _settings(data_dir)
    _start_logging(settings)
    return_big_buffers()
    if settings.worker_metrics_port:  # first: a port taken ends the worker before it takes work
        try:
            serve_process_metrics(settings.worker_metrics_port, settings.worker_metrics_host)
        except MetricsPortError as exc:
            console.print(f"loadbay worker: {exc}", markup=False, highlight=False)
            raise typer.Exit(1) from None
    rt = Runtime.for_workers(settings, default_registry(), base_url=settings.base_url())
    pool = WorkerPool(rt, concurrency, kind="worker")
    fewer_collections()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pool.stop.set())
    pool.start()
    console.print(f"loadbay worker: {concurrency} threads on {rt.db.engine.url.render_as_string()}")
    while not pool.stop.wait(1.0):
        pass
    pool.shutdown()
    rt.close()


@app.command(short_help="Check the database, the blob store, the signing key and the workers.")
def doctor(data_dir: DataDir = None) -> None:
    """Check this environment: the database, the blob store (a probe object written, read and
    deleted), the signing key and the workers. Exit status 0 when all is well, else 1."""
    from loadbay.blobs import UrlSigner, open_store
    from loadbay.core import doctor as checks
    from loadbay.db.engine import Database

    settings = _settings(data_dir)
    db = Database(settings.resolved_database_url(), pool_size=1)
    found = [checks.check_database(db)]
    try:
        store = open_store(settings, UrlSigner(b"", settings.base_url()))  # (the probe signs nothing)
        found.append(checks.check_store(store))
    except Exception as exc:  # no such store can even be opened (a bad URL, no credentials)
        found.append(checks.Check("store", False, f"cannot be opened: {exc}"))
    found += [checks.check_signing_key(settings), checks.check_workers(db, settings.heartbeat_seconds)]
    db.dispose()
    for check in found:
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.name}: {escape(check.detail)}", soft_wrap=True)
    raise typer.Exit(0 if all(c.ok for c in found) else 1)


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


# client side: the connection -------------------------------------------------


@contextmanager
def _api(url: str, key: str, retry_for: float) -> Iterator[Client]:
    """A client of the server; a refusal or no answer ends the command with its exit status."""
    if not key:
        raise typer.BadParameter("no API key: set LOADBAY_API_KEY or pass --key", param_hint="'--key'")
    try:
        with Client(url, key, retry=RetryPolicy(budget=retry_for), on_retry=_note_retry) as client:
            yield client
    except Refused as exc:
        _refused(exc)
    except Unreachable as exc:
        console.print(f"[red]unreachable[/] {escape(str(exc))}")
        raise typer.Exit(ExitCode.UNREACHABLE) from None


def _refused(exc: Refused, hint: str = "") -> NoReturn:
    console.print(f"[red]refused[/] HTTP {exc.status} {escape(exc.code)}: {escape(exc.detail)}")
    if hint:
        console.print(hint)
    raise typer.Exit(ExitCode.REQUEST_REFUSED)


def _note(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _note_retry(problem: str, delay: float, left: float) -> None:
    console.print(
        f"[yellow]no answer[/] ({escape(problem)}); trying again in {delay:.1f} s "
        f"(for {max(0.0, left):.0f} s more)"
    )


# client side: push ---------------------------------------------------------------

# What `push` sends for each file name extension (the server reads the format from it).
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
}
_SPREADSHEETS = {".xlsx", ".xls", ".xlsm", ".ods", ".numbers"}
# The name `push` gives its file in the batch (the API's default), whatever the file's own: a
# push again with the same job id replaces it, renamed or not, rather than adding a second file.
PUSH_INPUT = "data"


def _content_type(file: Path) -> str:
    """The Content-Type for FILE, or a usage error before anything is sent."""
    suffix = file.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    known = ", ".join(CONTENT_TYPES)
    message = f"loadbay reads {known} files, not {file.name!r}"
    if suffix in _SPREADSHEETS:
        message += ": save the sheet as CSV (UTF-8) and push that"
    elif suffix in {".txt", ""}:
        message += ": rename it after its format (.csv for comma-separated values, .tsv for tabs)"
    raise typer.BadParameter(message, param_hint="'FILE'")


def _options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs as batch options; a VALUE that reads as JSON (true, 3, "x") is taken so."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="'--option'")
        try:
            options[name] = json.loads(value)
        except ValueError:
            options[name] = value
    return options


@app.command(epilog=_codes(*_FOLLOW))
def push(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)],
    type: Annotated[
        str, typer.Option("--type", help="Batch type, e.g. billing.customer", show_default=False)
    ],
    job_id: Annotated[
        str | None, typer.Option("--job-id", help="Your name for this import (default: one made up)")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the batch until it is final")] = False,
    manual: Annotated[
        bool, typer.Option("--manual", help="Two-phase: validate only; apply with `loadbay process ID`")
    ] = False,
    description: Annotated[str | None, typer.Option("--description", help="A note on the batch")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="A batch option KEY=VALUE (repeatable)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the batch as JSON at the end")] = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """Upload FILE as a new batch and submit it: .csv, .tsv, .jsonl, .ndjson or .json.

    The batch's job id (--job-id, or one made up) makes a push safe to repeat: a push the
    server's restart cut short carries on with the same batch, and a second push with the
    same --job-id reports the batch the first one made (the file is not sent again once the
    batch was submitted). With --wait it shows the progress and the batch's warnings until
    the batch is final, then exits with its outcome."""
    content_type = _content_type(file)
    body = {
        "type": type,
        "job_id": job_id or f"cli-{uuid.uuid4()}",
        "description": description,
        "process": "manual" if manual else "auto",
        "options": _options(option or []),
    }
    say = _note if as_json else typer.echo  # with --json, stdout is the JSON alone
    with _api(url, key, retry_for) as client:
        batch = _attach(client, body, file, content_type, say)
        warned: set[str] = set()
        if wait:
            batch = _follow(client, batch, warned)
        _show_warnings(batch, warned)
        if wait or settled(batch):
            _finish(batch, client.url, as_json)
        if as_json:
            typer.echo(json.dumps(batch, indent=2))


def _attach(
    client: Client, body: dict[str, Any], file: Path, content_type: str, say: Callable[[str], None]
) -> Batch:
    """The batch of this job id: made, or found, and given FILE and submitted if still open.
    Ctrl-C meanwhile ends the command with the job id to carry on with (and the batch's id)."""
    batch = None
    try:
        batch = _made(client, body, say)
        return _filled(client, batch, file, content_type, say)
    except KeyboardInterrupt:
        _interrupted_push(body["job_id"], batch)


def _interrupted_push(job_id: str, batch: Batch | None) -> NoReturn:
    made = (
        f"batch {batch['id']} was made and may wait for its file or submit" if batch else "no batch seen yet"
    )
    _note(f"interrupted ({made}): to carry on, push again with --job-id {job_id}")
    raise typer.Exit(ExitCode.INTERRUPTED)


def _made(client: Client, body: dict[str, Any], say: Callable[[str], None]) -> Batch:
    """The batch of this job id: made now, or found."""
    try:
        batch, created = client.create_batch(body)
    except Refused as exc:
        if exc.code != "JOB_ID_CONFLICT":
            raise
        _refused(
            exc,
            f"job id {body['job_id']!r} was pushed before with another --type, --manual, "
            "--description or --option: push with those again, or choose another --job-id",
        )
    if not created:
        say(f"batch {batch['id']} already exists for job id {body['job_id']!r}: {batch['status']}")
    return batch


def _filled(client: Client, batch: Batch, file: Path, content_type: str, say: Callable[[str], None]) -> Batch:
    """The batch given FILE and submitted, if it is still open."""
    if batch["status"] == "open":
        with _upload_body(file) as chunks:
            client.upload(batch["id"], PUSH_INPUT, content_type, chunks, file.stat().st_size)
        batch = client.submit(batch["id"])
        say(f"batch {batch['id']} submitted ({file.name})")
    return batch


@contextmanager
def _upload_body(file: Path) -> Iterator[Callable[[], Iterable[bytes]]]:
    """What makes the upload's body (afresh for each try), with a bar on a terminal."""
    if not console.is_terminal:
        yield lambda: _chunks(file, lambda _sent: None)
        return
    columns = (
        TextColumn("uploading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(escape(file.name), total=file.stat().st_size)
        yield lambda: _chunks(file, lambda sent: bar.update(task, completed=sent))


def _chunks(file: Path, sent: Callable[[int], None], size: int = 1 << 20) -> Iterator[bytes]:
    done = 0
    sent(done)
    with file.open("rb") as stream:
        while data := stream.read(size):
            yield data
            done += len(data)
            sent(done)


# client side: following a batch -------------------------------------------------------

Reporter = Callable[[Batch], None]


def _follow(client: Client, batch: Batch, warned: set[str] | None = None) -> Batch:
    """Poll until the batch settles, showing its progress and its warnings as they come."""
    warned = set() if warned is None else warned
    reporter = _bar_reporter if console.is_terminal else _line_reporter
    wait, most = POLL_SECONDS
    try:
        with reporter() as report:
            while True:
                _show_warnings(batch, warned)
                _say_open(batch, client.url, warned)
                report(batch)
                if settled(batch):
                    return batch
                time.sleep(wait)
                wait = min(most, wait * 1.5)
                batch = client.batch(batch["id"])
    except KeyboardInterrupt:
        console.print(f"stopped following batch {batch['id']}; it goes on: `loadbay watch {batch['id']}`")
        raise typer.Exit(ExitCode.INTERRUPTED) from None


@contextmanager
def _bar_reporter() -> Iterator[Reporter]:
    """A bar of records done: pulsing while the total is unknown, the server's rate and ETA."""
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=None, count="", speed="")

        def update(batch: Batch) -> None:
            p = batch["progress"]
            count, speed = _progress_text(p)
            progress.update(
                task,
                description=batch["status"],
                total=p["total"],
                completed=p["done"],
                count=count,
                speed=speed,
            )

        yield update


@contextmanager
def _line_reporter() -> Iterator[Reporter]:
    """A line per change of status or records done, for logs and pipes."""
    last: list[tuple[str, int, int | None]] = []

    def update(batch: Batch) -> None:
        p = batch["progress"]
        now = (batch["status"], p["done"], p["total"])
        if not last or last[-1] != now:
            count, speed = _progress_text(p)
            console.print(f"{batch['status']} {count}" + (f" {speed}" if speed else ""), markup=False)
            last.append(now)

    yield update


def _progress_text(progress: dict[str, Any]) -> tuple[str, str]:
    """("done/total", "rate, ETA") as the server knows them ("?" for a total not known yet)."""
    total = "?" if progress["total"] is None else str(progress["total"])
    speed = []
    if progress.get("rate"):
        speed.append(f"{progress['rate']:,.0f} records/s")
    if progress.get("eta_seconds"):
        speed.append(f"ETA {_duration(progress['eta_seconds'])}")
    return f"{progress['done']}/{total}", ", ".join(speed)


def _duration(seconds: int) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _say_open(batch: Batch, url: str, said: set[str]) -> None:
    """Once: an open batch waits for its data and a submit (made by whoever made it)."""
    line = (
        f"batch {batch['id']} is open: nothing happens to it until it is submitted "
        f"(POST {url}/v1/batches/{batch['id']}/submit); watching on (Ctrl-C stops watching)"
    )
    if batch["status"] == "open" and line not in said:
        _note(line)
        said.add(line)


def _show_warnings(batch: Batch, shown: set[str]) -> None:
    for warning in batch.get("warnings") or []:
        if warning not in shown:
            console.print(f"[yellow]warning[/] {escape(warning)}")
            shown.add(warning)


def outcome_code(batch: Batch) -> ExitCode:
    """The exit status for a settled batch."""
    if batch["status"] in ("error", "cancelled", "cleared"):
        return ExitCode.BATCH_FAILED
    counts = batch["counts"]
    refused = counts["invalid"] + counts["failed"] + counts["unprocessed"]
    return ExitCode.RECORDS_REFUSED if refused else ExitCode.OK


def _finish(batch: Batch, url: str, as_json: bool) -> NoReturn:
    """Print the settled batch and exit with its outcome."""
    if as_json:
        typer.echo(json.dumps(batch, indent=2))
    else:
        typer.echo(_summary(batch))
    code = outcome_code(batch)
    if code == ExitCode.RECORDS_REFUSED:
        _point_to_refused(batch, url)
    if batch["status"] == "validated":
        console.print(f"apply it with: loadbay process {batch['id']}")
    raise typer.Exit(code)


def _point_to_refused(batch: Batch, url: str) -> None:
    c, batch_id = batch["counts"], batch["id"]
    refused = c["invalid"] + c["failed"] + c["unprocessed"]
    # (a validated batch's invalid records are its only refused ones, and all it can list yet)
    outcome = "invalid" if batch["status"] == "validated" else "invalid,failed,unprocessed"
    console.print(
        f"{refused} of {many(c['total'], 'record')} refused ({c['invalid']} invalid, {c['failed']} failed, "
        f"{c['unprocessed']} unprocessed); see them with:\n"
        f"  loadbay errors {batch_id}\n"
        f"  loadbay results {batch_id} --outcome {outcome}\n"
        f"  (GET {url}/v1/batches/{batch_id}/results?outcome={outcome})",
        markup=False,
    )


def _summary(batch: Batch) -> str:
    c = batch["counts"]
    line = (
        f"batch {batch['id']} {batch['status']}"
        + (f" ({batch['outcome']})" if batch.get("outcome") else "")
        + f": {many(c['total'], 'record')}, {c['succeeded']} succeeded, {c['invalid']} invalid, "
        f"{c['failed']} failed, {c['unprocessed']} unprocessed"
    )
    if batch.get("error"):
        line += f"\nerror {batch['error']['code']}: {batch['error']['message']}"
    return line


@app.command(epilog=_codes(*_FOLLOW))
def watch(
    batch_id: BatchId,
    as_json: Annotated[bool, typer.Option("--json", help="Print the batch as JSON at the end")] = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """Follow a batch with a progress bar until it is final, then exit with its outcome.

    A two-phase batch (pushed with --manual) is followed until it is validated."""
    with _api(url, key, retry_for) as client:
        batch = _follow(client, client.batch(batch_id))
        _finish(batch, client.url, as_json)


@app.command(epilog=_codes(*_FOLLOW))
def process(
    batch_id: BatchId,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the batch until it is final")] = False,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """Apply a validated two-phase batch (one pushed with --manual)."""
    with _api(url, key, retry_for) as client:
        batch = client.process(batch_id)
        if wait:
            _finish(_follow(client, batch), client.url, as_json)
        typer.echo(json.dumps(batch, indent=2) if as_json else _summary(batch))


@app.command(epilog=_codes(*_REQUEST))
def cancel(
    batch_id: BatchId,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """Cancel a batch: records not applied yet end unprocessed."""
    with _api(url, key, retry_for) as client:
        batch = client.cancel(batch_id)
    typer.echo(json.dumps(batch, indent=2) if as_json else _summary(batch))


# client side: reading batches ----------------------------------------------------------------


@app.command(epilog=_codes(*_REQUEST))
def show(
    batch_id: BatchId,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """Show a batch: its status, counts, progress, warnings and error."""
    with _api(url, key, retry_for) as client:
        batch = client.batch(batch_id)
    if as_json:
        typer.echo(json.dumps(batch, indent=2))
        return
    typer.echo(_summary(batch))
    out.print(_details(batch))


app.command("status", epilog=_codes(*_REQUEST), help="Show a batch (the same as `show`).")(show)


def _details(batch: Batch) -> Table:
    grid = Table.grid(padding=(0, 2))
    p = batch["progress"]
    count, speed = _progress_text(p)
    rows = {
        "type": batch["type"],
        "job id": batch.get("job_id"),
        "description": batch.get("description"),
        "process": batch["process"],
        "created": _when(batch["created_at"]),
        "submitted": _when(batch.get("submitted_at")),
        "finished": _when(batch.get("finished_at")),
        "progress": None if batch["status"] in FINAL else f"{count} {speed}".strip(),
        "test": "yes" if batch.get("test") else None,
    }
    for name, value in rows.items():
        if value:
            grid.add_row(name, escape(str(value)))
    for warning in batch.get("warnings") or []:
        grid.add_row("warning", escape(warning))
    return grid


def _when(value: str | None) -> str | None:
    """An API time (ISO 8601, UTC) as local time to the second."""
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@app.command("list", epilog=_codes(*_REQUEST))
def list_batches(
    status: Annotated[str | None, typer.Option("--status", help="Only batches in this status")] = None,
    type: Annotated[str | None, typer.Option("--type", help="Only batches of this type")] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Only batches whose job id or description holds this")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all)")] = 20,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """List your batches, newest first."""
    filters = {k: v for k, v in {"status": status, "type": type, "q": search}.items() if v}
    with _api(url, key, retry_for) as client:
        batches = list(client.batches(filters, limit))
    if as_json:
        typer.echo(json.dumps(batches, indent=2))
        return
    if not batches:
        console.print("no batches" + (" match" if filters else ""))
        return
    table = Table("id", "type", "status", "outcome", "records", "job id", "created")
    for b in batches:
        done, total = b["progress"]["done"], b["progress"]["total"]
        records = f"{done}/{'?' if total is None else total}"
        row = (b["id"], b["type"], b["status"], b["outcome"] or "", records, b["job_id"] or "")
        table.add_row(*(escape(str(v)) for v in row), _when(b["created_at"]))
    out.print(table)


@app.command(epilog=_codes(*_REQUEST))
def errors(
    batch_id: BatchId,
    every: Annotated[
        bool, typer.Option("--list", help="Each record error, in order, instead of the groups")
    ] = False,
    code: Annotated[str | None, typer.Option("--code", help="With --list: only this code")] = None,
    field: Annotated[str | None, typer.Option("--field", help="With --list: only this field")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="With --list: at most this many (0: all)")
    ] = 100,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """A batch's record errors: grouped by code and field with examples, or each one (--list)."""
    with _api(url, key, retry_for) as client:
        if every or code or field is not None:
            filters = {k: v for k, v in {"code": code, "field": field}.items() if v is not None}
            _error_list(client.errors(batch_id, filters, limit), as_json)
        else:
            _error_groups(client.error_summary(batch_id), batch_id, as_json)


def _error_groups(summary: dict[str, Any], batch_id: int, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if not summary["groups"]:
        console.print(f"batch {batch_id} has no record errors")
        return
    title = f"{summary['total']} record error" + ("s" if summary["total"] != 1 else "")
    table = Table("code", "field", "errors", "for example", title=title)
    for group in summary["groups"]:
        examples = "\n".join(_example(e) for e in group["examples"])
        table.add_row(
            escape(group["code"]), escape(group["field"] or ""), str(group["count"]), escape(examples)
        )
    out.print(table)
    if summary.get("not_listed"):  # (an older server has no such field)
        count = summary["not_listed"]
        console.print(f"{count} more error{'s' if count != 1 else ''} in groups not listed here")
    console.print(f"each one: loadbay errors {batch_id} --list [--code CODE] [--field FIELD]")


def _example(example: dict[str, Any]) -> str:
    record = f"#{example['index']}" + (f" {example['external_id']}" if example.get("external_id") else "")
    value = f" (value {example['value']!r})" if example.get("value") is not None else ""
    return f"{record}: {example['message']}{value}"


def _error_list(rows: Iterator[dict[str, Any]], as_json: bool) -> None:
    """Each error: a JSON array written as it arrives, or tables of up to 1000 rows."""
    if as_json:
        _json_array(rows)
        return
    shown = 0
    while page := [row for _, row in zip(range(1000), rows, strict=False)]:
        table = Table("record", "external id", "field", "code", "message")
        for e in page:
            table.add_row(
                str(e["index"]), *(escape(e[k] or "") for k in ("external_id", "field", "code", "message"))
            )
        out.print(table)
        shown += len(page)
    if not shown:
        console.print("no record errors")


def _json_array(items: Iterable[Any]) -> None:
    """A JSON array of `items`, written as they come, once the first has (a refusal of the first
    page writes nothing: stdout is JSON or empty)."""
    rest = iter(items)
    first = list(itertools.islice(rest, 1))
    sys.stdout.write("[")
    for n, item in enumerate(itertools.chain(first, rest)):
        sys.stdout.write(("," if n else "") + "\n  " + json.dumps(item))
    sys.stdout.write("\n]\n")


@app.command(
    epilog=_codes(*_REQUEST),
    short_help="A batch's result CSV: every record with loadbay_status, action, entity id and error.",
)
def results(
    batch_id: BatchId,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout")
    ] = None,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            "--outcome",
            help="Only records that ended so: succeeded, invalid, failed, unprocessed (repeatable, or a,b)",
        ),
    ] = None,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """A batch's result CSV: every record with loadbay_status, action, entity id and error.
    Once it is final; with --outcome invalid alone, once its validation has ended."""
    outcomes = [name.strip() for value in outcome or [] for name in value.split(",") if name.strip()]
    if output is not None:
        _check_output(output)
    with _api(url, key, retry_for) as client, client.results(batch_id, outcomes) as body:
        if output is None:
            _to_stdout(body)
        else:
            _to_file(body, output)


def _to_stdout(body: Iterable[bytes]) -> None:
    try:
        for data in body:
            sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the reader has had enough (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _check_output(output: Path) -> None:
    """A usage error, before anything is asked of the server, for an -o that cannot be written."""
    problem = None
    if output.is_dir():
        problem = "is a directory: name a file (in it)"
    elif not output.parent.is_dir():
        problem = f"is in no directory: {str(output.parent)!r} does not exist"
    elif not os.access(output.parent, os.W_OK):
        problem = f"cannot be written: you may not write in {str(output.parent)!r}"
    if problem:
        raise typer.BadParameter(f"{str(output)!r} {problem}", param_hint="'-o'")


@contextmanager
def _writing(output: Path) -> Iterator[None]:
    """An OSError while writing `output` (a full disk) as one line and the usage exit status."""
    try:
        yield
    except OSError as exc:
        console.print(f"[red]cannot write[/] {escape(str(output))}: {escape(exc.strerror or str(exc))}")
        raise typer.Exit(ExitCode.USAGE) from None


def _to_file(body: Iterable[bytes], output: Path) -> None:
    """Written beside, then renamed: a download cut short leaves no half file."""
    partial = output.with_name(output.name + ".part")
    try:
        with _writing(output):
            with partial.open("wb") as stream:
                for data in body:
                    stream.write(data)
            partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    console.print(f"wrote {output}")


# client side: types ----------------------------------------------------------------------------


@app.command(epilog=_codes(*_REQUEST))
def types(
    name: Annotated[str | None, typer.Argument(help="A type: show its columns", show_default=False)] = None,
    template: Annotated[
        bool, typer.Option("--template", help="With NAME: its CSV template (the header row)")
    ] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the template here")] = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """The batch types this server takes; with NAME, its columns (the required ones marked)."""
    if (template or output) and not name:
        raise typer.BadParameter("--template needs a type NAME", param_hint="'--template'")
    if output is not None:
        _check_output(output)
    with _api(url, key, retry_for) as client:
        if template or output:
            _write_text(client.template(str(name)), output)
            return
        every = client.types()
    chosen = [t for t in every if name is None or t["name"] == name]
    if name and not chosen:
        console.print(f"[red]refused[/] UNKNOWN_TYPE: no type {escape(name)!r}; `loadbay types` lists them")
        raise typer.Exit(ExitCode.REQUEST_REFUSED)
    if as_json:
        typer.echo(json.dumps(chosen[0] if name else every, indent=2))
    else:
        out.print(_columns_table(chosen[0]) if name else _types_table(every))


def _write_text(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    with _writing(output):
        output.write_text(text)
    console.print(f"wrote {output}")


def _types_table(every: list[dict[str, Any]]) -> Table:
    table = Table("type", "key", "columns", "description")
    for t in every:
        table.add_row(t["name"], t["key"] or "", str(len(t["columns"])), escape(t.get("description") or ""))
    return table


def _columns_table(batch_type: dict[str, Any]) -> Table:
    properties = batch_type["schema"].get("properties", {})
    required = set(batch_type["required"])
    described = any(properties.get(c, {}).get("description") for c in batch_type["columns"])
    table = Table("column", "required", "type", title=batch_type["name"])
    if described:
        table.add_column("description")
    for column in batch_type["columns"]:
        prop = properties.get(column, {})
        row = [column, "yes" if column in required else "", _json_type(prop)]
        table.add_row(*row, *([escape(prop.get("description", ""))] if described else []))
    return table


def _json_type(prop: dict[str, Any]) -> str:
    """A JSON Schema property's type in a few words (e.g. "string", "number or string")."""
    if "enum" in prop:
        return "one of " + ", ".join(str(v) for v in prop["enum"])
    kinds = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    names = [str(p.get("format") or p.get("type") or "") for p in kinds]
    return " or ".join(n for n in names if n)


# client side: webhooks -------------------------------------------------------------------------

webhooks_app = typer.Typer(help="Your webhook endpoints (manage them with the API or the dashboard).")
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("list", epilog=_codes(*_REQUEST))
def webhooks_list(
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = "",
    retry_for: RetryFor = RETRY_SECONDS,
) -> None:
    """List your webhook endpoints: where events go, which, and whether they are enabled."""
    with _api(url, key, retry_for) as client:
        endpoints = client.webhooks()
    if as_json:
        typer.echo(json.dumps(endpoints, indent=2))
        return
    if not endpoints:
        console.print("no webhook endpoints")
        return
    table = Table("id", "url", "events", "state", "created")
    for e in endpoints:
        events = ", ".join(name.removeprefix("batch.") for name in e["events"])
        table.add_row(str(e["id"]), escape(e["url"]), events, escape(_hook_state(e)), _when(e["created_at"]))
    out.print(table)


def _hook_state(endpoint: dict[str, Any]) -> str:
    if not endpoint["enabled"]:
        reason = endpoint["disabled_reason"]
        return f"disabled: {reason}" if reason else "disabled"
    since = endpoint["failing_since"]
    return f"enabled, failing since {_when(since)}" if since else "enabled"


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
