"""What the operator commands print: aligned tables and key/value blocks for people, one JSON
document on stdout for scripts (`--json`), and a progress bar on stderr fed by a job's progress."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ombaro.commands import to_json
from ombaro.models.jobs import Job

JOB_FIELDS = ("id", "kind", "status", "progress", "progress_message", "params", "result", "error", "attempts",
              "max_attempts", "requested_by", "scheduled_for", "created_at", "started_at", "finished_at")


def job_document(job: Job) -> dict[str, Any]:
    """A job as the API's JobSchema shows it (GET /api/v1/jobs/<id>), plus its duration."""
    document: dict[str, Any] = to_json({name: getattr(job, name) for name in JOB_FIELDS})
    document["duration_seconds"] = duration_seconds(job)
    return document


def duration_seconds(job: Job) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at or dt.datetime.now(dt.UTC)
    return round((end - job.started_at).total_seconds(), 1)


def emit_json(document: Any, stream: TextIO | None = None) -> None:
    """The one JSON document a `--json` command writes to stdout."""
    out = stream or sys.stdout
    out.write(json.dumps(to_json(document), indent=2, sort_keys=True) + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping | list):
        return json.dumps(to_json(value), sort_keys=True)
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write("".join(line + "\n" for line in table_lines(rows, columns)))


def table_lines(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """Aligned columns under an upper-case header; a column of numbers is right-aligned."""
    if not rows:
        return ["(none)"]
    texts = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in texts)) for i, column in enumerate(columns)]
    numeric = [all(_is_number(row.get(column)) for row in rows) for column in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric, strict=True)).rstrip()

    return [line([c.upper() for c in columns]), *(line(values) for values in texts)]


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(str(value))
    except ValueError:
        return value is None
    return True


def key_values(pairs: Mapping[str, Any], stream: TextIO | None = None, indent: str = "") -> None:
    """`key  value` lines; nested objects indented under their key, lists of objects as tables."""
    out = stream or sys.stdout
    width = max((len(k) for k, v in pairs.items() if not isinstance(v, Mapping) and not _rows(v)), default=0)
    for key, value in pairs.items():
        if isinstance(value, Mapping):
            out.write(f"{indent}{key}:\n")
            key_values(value, out, indent + "  ") if value else out.write(f"{indent}  (empty)\n")
        elif _rows(value):
            out.write(f"{indent}{key}: {len(value)}\n")
            columns = list(dict.fromkeys(c for row in value for c in row if not isinstance(row[c], Mapping | list)))
            out.write("".join(f"{indent}  {line}\n" for line in table_lines(value, columns)))
        elif isinstance(value, list):
            out.write(f"{indent}{key.ljust(width)}  {', '.join(cell(v) for v in value) or '-'}\n")
        else:
            out.write(f"{indent}{key.ljust(width)}  {cell(value)}\n")


def _rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


class ProgressBar:
    """A job's progress on stderr: redrawn in place with \\r on a terminal, otherwise one line per
    change (logs and pipes stay readable)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.tty = self.stream.isatty()
        self._last: tuple[str, int, str] | None = None
        self._drawn = 0

    def update(self, status: str, percent: float, message: str | None) -> None:
        state = (status, int(percent), message or "")
        if state == self._last:
            return
        self._last = state
        filled = round(self.width * max(0.0, min(100.0, percent)) / 100)
        line = f"{self.label} [{'#' * filled}{'-' * (self.width - filled)}] {percent:5.1f}% {status}"
        if message:
            line += f": {message}"
        if self.tty:
            self.stream.write("\r" + line.ljust(self._drawn))
            self._drawn = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0


def note(message: str) -> None:
    """A line for the person at the terminal, never on stdout (stdout is for results and --json)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
