"""`loadbay --help` as a newcomer reads it: each command's summary on one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from loadbay.cli import app


@pytest.mark.parametrize("group", [[], ["accounts"], ["webhooks"], ["tracking"]])
def test_each_command_is_summed_up_on_one_line(group: list[str]) -> None:
    """In the Commands panel a row whose name cell is blank continues the summary above it:
    with room for any summary (250 columns) there must be none (a docstring's first paragraph
    broken over lines showed its line breaks there, mid-sentence)."""
    shown = CliRunner().invoke(app, [*group, "--help"], env={"COLUMNS": "250", "TERM": "dumb"})
    assert shown.exit_code == 0, shown.output
    panel = shown.output.split("Commands")[1].split("╰")[0]
    rows = [line for line in panel.splitlines() if line.startswith("│")]
    assert rows, shown.output
    continued = [row for row in rows if row[:3] == "│  "]  # (a command's row: "│ name  summary")
    assert not continued, shown.output
