"""The `loadbay` CLI when things go wrong, run as a user runs it (`python -m loadbay …` in a
subprocess) against a real server, or a loopback listener that misbehaves on purpose: a push
cut short, then pushed again; output paths that cannot be written; a server that takes the
connection and never answers; Ctrl-C; a batch left open; a mistyped command."""

from __future__ import annotations

import csv
import io
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from loadbay.cli import ExitCode
from tests.support.servers import Server, free_port

HEADER = "customer_number,name,email\n"


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "loadbay", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def user_env(server: Server, key: str, url: str | None = None) -> dict[str, str]:
    return server.env | {"LOADBAY_URL": url or server.url, "LOADBAY_API_KEY": key, "COLUMNS": "200"}


@contextmanager
def forwarding(upstream: str, *, drop: str) -> Iterator[str]:
    """A loopback proxy to `upstream` that hangs up without an answer on each request whose
    path ends with `drop` (as a server killed at that moment would); its URL."""

    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith(drop):
                self.close_connection = True
                return
            names = ("X-Api-Key", "Content-Type", "User-Agent")
            headers = {name: self.headers[name] for name in names if self.headers[name]}
            answer = httpx.request(self.command, upstream + self.path, headers=headers, content=body)
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_PUT = do_POST = _forward

        def log_message(self, *_args: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()


@contextmanager
def silent_listener() -> Iterator[str]:
    """A loopback listener that takes every connection and never answers; its URL."""
    held: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def take() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=take, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in held:
            conn.close()


# push ----------------------------------------------------------------------------------------


def test_a_push_again_after_one_cut_short_replaces_its_file(server: Server, key: str, tmp_path: Path) -> None:
    """A push cut off after its upload of old.csv leaves the batch open with it; the user fixes
    the file, names it new.csv and pushes with the same job id: the batch reads new.csv alone."""
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(HEADER + "C1,Ada,not-an-email\nC2,Bob,bob@old\n")
    new.write_text(HEADER + "C1,Ada,ada@example.com\nC2,Bob,bob@example.com\n")
    push = ("push", "--type", "billing.customer", "--job-id", "dup-files")
    with forwarding(server.url, drop="/submit") as proxy:
        cut = run(user_env(server, key, proxy), *push, str(old), "--retry-for", "0")
    assert cut.returncode == ExitCode.UNREACHABLE, cut.stdout + cut.stderr

    again = run(user_env(server, key), *push, str(new), "--wait")
    assert again.returncode == ExitCode.OK, again.stdout + again.stderr
    assert "2 records, 2 succeeded, 0 invalid, 0 failed" in again.stdout
    assert "(new.csv)" in again.stdout, "the push names the file it sent"
    number = int(again.stdout.split()[1])
    with server.client(key) as client:
        inputs = client.get(f"/v1/batches/{number}/inputs").json()["data"]
    assert [(i["kind"], i["format"]) for i in inputs] == [("file", "csv")], inputs
    results = run(user_env(server, key), "results", str(number))
    rows = list(csv.DictReader(io.StringIO(results.stdout)))
    assert [(r["email"], r["loadbay_status"]) for r in rows] == [
        ("ada@example.com", "succeeded"),
        ("bob@example.com", "succeeded"),
    ]


# output files --------------------------------------------------------------------------------


def test_an_output_path_that_cannot_be_written_is_a_usage_error(
    server: Server, key: str, tmp_path: Path
) -> None:
    """Checked before the download: one message, exit 2, and no file made beside the target."""
    source = tmp_path / "c.csv"
    source.write_text(HEADER + "C1,Ada,ada@example.com\n")
    env = user_env(server, key)
    pushed = run(env, "push", str(source), "--type", "billing.customer", "--wait")
    assert pushed.returncode == ExitCode.OK, pushed.stdout + pushed.stderr
    number = pushed.stdout.split()[1]
    folder = tmp_path / "out"
    folder.mkdir()
    for args, said in [
        (("results", number, "-o", str(tmp_path / "missing" / "x.csv")), "does not exist"),
        (("results", number, "-o", str(folder)), "is a directory"),
        (("types", "billing.customer", "--template", "-o", str(tmp_path / "missing" / "x.csv")), "exist"),
    ]:
        refused = run(env, *args)
        assert refused.returncode == ExitCode.USAGE, refused.stderr
        assert said in refused.stderr and refused.stdout == "", refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "out"]
    assert not list(folder.iterdir())


# a server that does not answer ---------------------------------------------------------------


def test_a_server_that_never_answers_ends_within_the_retry_time(tmp_path: Path) -> None:
    """The outage counts from the start of the first try, and no try waits longer than the
    time left: --retry-for 2 ends in about 2 s (each try used to wait 60 s for an answer)."""
    env = {"PATH": "/usr/bin:/bin", "LOADBAY_API_KEY": "lb_live_x", "HOME": str(tmp_path)}
    with silent_listener() as url:
        started = time.monotonic()
        shown = run(env, "show", "1", "--url", url, "--retry-for", "2", timeout=60)
        took = time.monotonic() - started
    assert shown.returncode == ExitCode.UNREACHABLE, shown.stderr
    assert "no answer in time" in shown.stderr
    assert shown.stderr.splitlines()[-1].startswith(f"unreachable no answer from {url} for 2 s")
    assert 2 <= took < 12, f"took {took:.1f} s with --retry-for 2 (python starts in a few)"


# JSON on stdout ------------------------------------------------------------------------------


def test_a_refused_error_list_writes_no_json(server: Server, key: str) -> None:
    """`errors --list --json` of no such batch: the refusal on stderr, nothing on stdout (it
    wrote `[` first: broken JSON for jq)."""
    listed = run(user_env(server, key), "errors", "999999", "--list", "--json")
    assert listed.returncode == ExitCode.REQUEST_REFUSED
    assert listed.stdout == "" and "404 NOT_FOUND" in listed.stderr


# Ctrl-C --------------------------------------------------------------------------------------


def interrupted(env: dict[str, str], *args: str, once: str, tmp_path: Path) -> tuple[int, str]:
    """Run the CLI until its stderr shows `once`, then press Ctrl-C: its exit status, stderr."""
    err = tmp_path / "cli.err"
    with err.open("w") as stream:
        cli = subprocess.Popen([sys.executable, "-m", "loadbay", *args], env=env, stderr=stream, text=True)
    try:
        deadline = time.monotonic() + 60
        while once not in err.read_text():
            assert time.monotonic() < deadline and cli.poll() is None, err.read_text()
            time.sleep(0.05)
        cli.send_signal(signal.SIGINT)
        code = cli.wait(30)
    finally:
        if cli.poll() is None:
            cli.kill()
    said = err.read_text()
    assert "Traceback" not in said, said
    return code, said


def test_ctrl_c_before_following_names_the_job_id_and_the_batch(
    server: Server, key: str, tmp_path: Path
) -> None:
    """Interrupted while the create is tried again (no batch yet), or the submit (a batch made):
    one line names the job id made up for the push (and the batch), to carry on with."""
    source = tmp_path / "c.csv"
    source.write_text(HEADER + "C1,Ada,ada@example.com\n")
    push = ("push", str(source), "--type", "billing.customer", "--retry-for", "60")
    nowhere = user_env(server, key, f"http://127.0.0.1:{free_port()}")  # (no one listens)
    code, said = interrupted(nowhere, *push, once="no answer", tmp_path=tmp_path)
    assert code == ExitCode.INTERRUPTED, said
    assert re.search(r"^interrupted \(no batch seen yet\): .* --job-id cli-[0-9a-f-]{36}$", said, re.M), said

    with forwarding(server.url, drop="/submit") as proxy:
        code, said = interrupted(user_env(server, key, proxy), *push, once="no answer", tmp_path=tmp_path)
    assert code == ExitCode.INTERRUPTED, said
    with server.client(key) as client:
        (batch,) = client.get("/v1/batches").json()["data"]
    line = f"interrupted (batch {batch['id']} was made and may wait for its file or submit): "
    assert f"{line}to carry on, push again with --job-id {batch['job_id']}\n" in said, said


# an open batch -------------------------------------------------------------------------------


def test_watch_says_once_that_an_open_batch_waits_for_a_submit(
    server: Server, key: str, tmp_path: Path
) -> None:
    """A batch never submitted (made with the API): watch says so once, and how to submit it,
    then watches on until Ctrl-C (it only polled `open 0/?`)."""
    with server.client(key) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer", "submit": False}).json()
    env = user_env(server, key)
    code, said = interrupted(env, "watch", str(made["id"]), once="open 0/", tmp_path=tmp_path)
    assert code == ExitCode.INTERRUPTED, said
    line = f"batch {made['id']} is open: nothing happens to it until it is submitted "
    assert said.count(line) == 1, said
    assert f"(POST {server.url}/v1/batches/{made['id']}/submit)" in said


# usage errors --------------------------------------------------------------------------------


def test_a_usage_error_is_one_line(tmp_path: Path) -> None:
    """What a user piping stderr reads: one line (it was a box of five), exit 2."""
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "80", "LOADBAY_URL": f"http://127.0.0.1:{free_port()}"}
    missing = str(tmp_path / "missing.csv")
    for args, said in [
        (("push", missing, "--type", "billing.customer"), "does not exist"),
        (("push", "--bogus"), "No such option: --bogus"),
        (("show", "1"), "no API key: set LOADBAY_API_KEY or pass --key"),
        (("nocommand",), "No such command 'nocommand'"),
    ]:
        refused = run(env, *args)
        assert refused.returncode == ExitCode.USAGE, refused.stderr
        assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("usage error: "), refused.stderr
        assert said in refused.stderr and re.search(r"\(see `.*loadbay.* --help`\)\n$", refused.stderr)
