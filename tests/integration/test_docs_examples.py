"""Every shell example in README.md and docs/ runs as written on a fresh `make run`.

For each Markdown file: a fresh `loadbay serve --demo` (what `make run` starts: SQLite and
files under ./data, the demo account's key in ./data/demo-api-key) in a temporary directory
laid out like a checkout after `make run` (its ./data, and ./.venv linking to this
repository's), then every ```sh and ```bash block of the file in order, in one bash
(`set -euo pipefail`), so a variable one block sets is there in the next, as in a reader's
terminal. Only the base URL http://127.0.0.1:8000 is replaced, by the test server's.

A block that must not run (`make run` itself, a vendor's real server) is preceded by an HTML
comment that says why: `<!-- not run: reason -->`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import Server, _wait_healthy, free_port

ROOT = Path(__file__).resolve().parents[2]
BASE_URL = "http://127.0.0.1:8000"
RUN = frozenset({"sh", "bash"})
# Shell in a fence these names would be neither run nor marked: refused, so nothing slips by.
SHELL_LIKE = frozenset({"shell", "console", "zsh", "shell-session", "shellsession"})
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^\s`]*)")
TIMEOUT = 180.0  # seconds for all the blocks of one file


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, from 1
    lang: str
    text: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, each with the not-run reason before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = _closing(lines, i + 1, fence)
        body = "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : end])
        found.append(Block(path, i + 1, opening["lang"].lower(), body, _marker(lines, i)))
        i = end + 1
    return found


def _closing(lines: list[str], start: int, fence: str) -> int:
    for j in range(start, len(lines)):
        stripped = lines[j].strip()
        if stripped.startswith(fence) and set(stripped) == {fence[0]}:
            return j
    return len(lines)


def _marker(lines: list[str], fence_at: int) -> str | None:
    """The reason of a `<!-- not run: … -->` on the nearest non-blank line before the fence."""
    for j in range(fence_at - 1, -1, -1):
        if lines[j].strip():
            found = NOT_RUN.match(lines[j].strip())
            return found["reason"] if found else None
    return None


def stray_markers(path: Path) -> list[int]:
    """Lines of not-run markers that no fenced block follows (a typo would run nothing)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    stray = []
    for i, line in enumerate(lines):
        if "<!--" not in line or "not run" not in line:
            continue
        following = next((x for x in lines[i + 1 :] if x.strip()), "")
        if not NOT_RUN.match(line.strip()) or not FENCE.match(following):
            stray.append(i + 1)
    return stray


def runnable(path: Path) -> list[Block]:
    return [b for b in blocks_of(path) if b.lang in RUN and b.not_run is None]


FILES = markdown_files()


def test_the_docs_are_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in FILES}
    assert {"README.md", "docs/native-api.md", "docs/glossary.md"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_blocks_are_sh_or_bash_and_markers_mark_blocks(path: Path) -> None:
    blocks = blocks_of(path)
    odd = [f"{b.where} ```{b.lang}" for b in blocks if b.lang in SHELL_LIKE]
    assert not odd, f"fence shell examples as sh or bash so they run: {odd}"
    unmarked = [b.where for b in blocks if b.not_run is not None and b.lang not in RUN]
    assert not unmarked, f"a not-run marker before a block that would not run anyway: {unmarked}"
    assert not stray_markers(path), f"{path.name}: malformed not-run markers at lines {stray_markers(path)}"


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*#*$")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a Markdown file's headings (outside code blocks)."""
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (heading := HEADING.match(line)):
            text = re.sub(r"[^\w\- ]", "", heading["text"].lower())
            found.add(text.replace(" ", "-"))
    return found


@pytest.mark.parametrize("path", [*FILES, ROOT / "CONTRIBUTING.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(path: Path) -> None:
    broken = []
    for link in LINK.finditer(path.read_text(encoding="utf-8")):
        target = link["target"]
        if re.match(r"^[a-z]+:", target):
            continue
        name, _, anchor = target.partition("#")
        file = (path.parent / name).resolve() if name else path
        if not file.exists() or anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{path.name}: links that lead nowhere: {broken}"


# running the examples ------------------------------------------------------------------------


@dataclass
class Checkout:
    home: Path
    server: Server


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Checkout]:
    """A fresh `make run`: `loadbay serve --host 127.0.0.1 --port P --demo` in a directory
    with ./data (made by the server) and ./.venv (this repository's)."""
    home = tmp_path / "checkout"
    home.mkdir()
    (home / ".venv").symlink_to(ROOT / ".venv")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")}
    log = tmp_path / "serve.log"
    args = [sys.executable, "-m", "loadbay", "serve", "--host", "127.0.0.1", "--port", str(port), "--demo"]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, env, log)
    try:
        _wait_healthy(server)
        yield Checkout(home, server)
    finally:
        server.stop()


RUNNABLE = [p for p in FILES if runnable(p)]


def test_some_examples_run() -> None:
    assert ROOT / "README.md" in RUNNABLE


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_examples_run(path: Path, checkout: Checkout) -> None:
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"the docs' examples need {tool}; install it")
            pytest.skip(f"the docs' examples need {tool}")
    blocks = runnable(path)
    script = _script(blocks, checkout.server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")} | {"HOME": str(checkout.home)}
    bash = subprocess.Popen(
        ["bash", "-c", script], cwd=checkout.home, env=env, start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        code = bash.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(bash.pid, signal.SIGKILL)
        bash.wait()
        pytest.fail(_report(blocks, checkout, f"still running after {TIMEOUT:.0f} s"))
    if code != 0:
        pytest.fail(_report(blocks, checkout, f"exit status {code}"))


def _script(blocks: list[Block], url: str) -> str:
    """One bash script: each block in a `{ … }` group (the shell's own, so its variables
    stay) with its output in a file of its own, after noting which block runs."""
    parts = ["set -euo pipefail"]
    for n, block in enumerate(blocks):
        parts.append(f"echo {n} > .docs-block")
        parts.append(f"{{\n{block.text.replace(BASE_URL, url)}\n}} > .docs-out-{n} 2>&1")
    parts.append("echo done > .docs-block")
    return "\n".join(parts) + "\n"


def _report(blocks: list[Block], checkout: Checkout, how: str) -> str:
    home = checkout.home
    at = (home / ".docs-block").read_text().strip() if (home / ".docs-block").exists() else "0"
    if not at.isdigit():
        return f"the blocks ran, then bash ended with {how}"
    block = blocks[int(at)]
    out = home / f".docs-out-{at}"
    output = out.read_text(errors="replace") if out.exists() else ""
    server_log = checkout.server.log.read_text(errors="replace").splitlines()[-30:]
    return (
        f"the shell block at {block.where} failed ({how}):\n"
        f"```{block.lang}\n{block.text}\n```\n"
        f"its output:\n{output}\n"
        f"the server's log (last lines):\n" + "\n".join(server_log)
    )
