"""Running the CLI in this process (`cli.main` with captured output) against the session's
database and Redis (the `service_env` fixture exports DATABASE_URL and REDIS_URL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cli import main
from tests.cli.helpers import Ran


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], service_env: dict[str, str]) -> Callable[..., Ran]:
    def run(*argv: str) -> Ran:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


