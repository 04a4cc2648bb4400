"""The layer contracts in pyproject.toml hold: no module imports from a layer above its own,
and no API profile imports another (import-linter, with no ignored imports)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_layer_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    run = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_no_contract_ignores_an_import() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["contracts"], "the layer contracts are missing"
    for contract in config["contracts"]:
        assert not contract.get("ignore_imports"), contract["name"]
