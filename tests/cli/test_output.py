"""The CLI's output helpers: aligned tables and the progress bar (no database)."""

from __future__ import annotations

import io

from cli.output import ProgressBar, table_lines


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    lines = table_lines([{"name": "reports.refresh", "runs": 7, "last": None},
                         {"name": "prune", "runs": 1234, "last": "2026-11-26"}], ["name", "runs", "last"])
    assert lines == ["NAME             RUNS  LAST",
                     "reports.refresh     7  -",
                     "prune            1234  2026-11-26"]
    assert table_lines([], ["name"]) == ["(none)"]


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    stream = Terminal()
    bar = ProgressBar("payroll.run 1234abcd", stream, width=10)
    bar.update("running", 40, "batch 2 of 5")
    bar.update("running", 40, "batch 2 of 5")  # no change, nothing drawn
    bar.update("succeeded", 100, None)
    bar.close()
    drawn = stream.getvalue()
    assert drawn.count("\r") == 2 and drawn.endswith("\n") and drawn.count("\n") == 1
    assert "[####------]  40.0% running: batch 2 of 5" in drawn
    assert "[##########] 100.0% succeeded" in drawn


def test_progress_bar_writes_a_line_per_change_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar("reports.refresh 1234abcd", stream, width=10)
    for percent, message in ((0, None), (50, "refreshed dashboard_stats"), (50, "refreshed dashboard_stats"),
                             (100, "refreshed daily_booking_stats")):
        bar.update("running", percent, message)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 3
    assert lines[1] == "reports.refresh 1234abcd [#####-----]  50.0% running: refreshed dashboard_stats"
