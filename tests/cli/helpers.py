"""What one in-process run of the CLI gave (the `cli` fixture's answer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)  # fails unless stdout is exactly one JSON document
