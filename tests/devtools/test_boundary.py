"""Development tooling stays out of the engine: only the `ombaro` command (cli/) imports `devtools`."""

from __future__ import annotations

import ast
from pathlib import Path

from ombaro.config import PROJECT_ROOT

# Every package the wheel ships; of them only the operator CLI may import devtools.
SHIPPED = ("ombaro", "web", "workers", "beat", "cli", "migrations")
ALLOWED = (PROJECT_ROOT / "cli",)  # `ombaro services`, `ombaro seed --demo`


def _imports_devtools(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        if any(name == "devtools" or name.startswith("devtools.") for name in names):
            lines.append(node.lineno)
    return lines


def test_the_engine_does_not_import_devtools() -> None:
    found = {f"{path.relative_to(PROJECT_ROOT)}:{line}"
             for package in SHIPPED for path in (PROJECT_ROOT / package).rglob("*.py")
             if not set(ALLOWED) & set(path.parents) for line in _imports_devtools(path)}
    assert not found, f"the engine imports development tooling: {sorted(found)}"


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\ndef f():\n    from devtools.demo import seed_demo\n")
    assert _imports_devtools(probe) == [4]
    assert _imports_devtools(PROJECT_ROOT / "cli" / "__init__.py")  # the CLI does
