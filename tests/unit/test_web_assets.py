"""Every file the dashboard serves ships in the package (pyproject's package-data), and no
page loads anything from another origin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "loadbay" / "web"


def test_every_dashboard_file_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["loadbay"]
    package = ROOT / "src" / "loadbay"
    files = [f.relative_to(package) for f in WEB.rglob("*") if f.is_file()]
    assert files
    missing = [str(f) for f in files if not any(_matches(f, g) for g in globs)]
    assert missing == []


def _matches(path: Path, glob: str) -> bool:
    """Whether the package-relative path is one the setuptools glob names (the whole path)."""
    return len(path.parts) == len(PurePosixPath(glob).parts) and path.match(glob)


def test_no_page_or_script_reaches_another_origin() -> None:
    remote = re.compile(
        r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|import\s[^;]*["']https?:"""
    )
    found = [
        f"{f.relative_to(WEB)}: {m.group(0)}"
        for f in WEB.rglob("*")
        if f.suffix in {".html", ".js", ".css"}
        for m in remote.finditer(f.read_text())
    ]
    assert found == []
