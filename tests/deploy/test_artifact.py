"""The deployable artifact: the wheel built from this checkout, installed into a fresh virtual
environment outside the checkout, migrates a database, serves the API and the console (templates
and static files from the wheel) under gunicorn, and a Celery worker from it runs a job."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from ombaro.config import PROJECT_ROOT, load_settings
from tests.deploy import free_port
from tests.deploy.artifact import build_wheel, fresh_venv
from tests.factories.accounts import PASSWORD, make_account
from tests.factories.console import CSRF
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(900)  # the first run fills the wheelhouse from the index


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_venv(wheel, tmp_path_factory.mktemp("deployed") / "venv")


def test_wheel_carries_templates_static_files_and_migrations_but_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    checkout = {p.relative_to(PROJECT_ROOT).as_posix() for pattern in (
        "web/console/templates/**/*.html", "web/console/static/*", "migrations/versions/*.py")
        for p in PROJECT_ROOT.glob(pattern)}
    assert len(checkout) > 30
    assert checkout <= names, sorted(checkout - names)
    assert {"migrations/alembic.ini", "migrations/env.py", "migrations/script.py.mako", "migrations/rls.py",
            "migrations/partitions.py",
            "devtools/embedded_services.py", "devtools/demo/seed.py"} <= names  # `ombaro services`, `seed --demo`
    assert not [n for n in names if n.split("/")[0] in ("tests", "bench", "var", "docs")]


class Installed:
    """A process of the installed engine: its own working directory, no trace of the checkout."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited ({self.proc.returncode}):\n{self.output()[-4000:]}")
            return needle in self.output()
        wait_until(seen, timeout=timeout, what=f"{needle!r} in {self.log_path.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
def deployed_env(venv_python: Path, make_database: Callable[[], str], redis_url: str, service_env: dict[str, str],
                 tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The environment a deployment gives the engine: an empty database, the broker, production
    secrets required (the same keys as this test process, so its accounts can sign in), and a
    working directory that is not the checkout; PYTHONPATH and the checkout's venv left out."""
    settings = load_settings()
    keys = ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in settings.data_keys.items())
    workdir = tmp_path / "srv"
    workdir.mkdir()
    env = {"PATH": f"{venv_python.parent}:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8",
           "DATABASE_URL": make_database(), "REDIS_URL": redis_url, "OMBARO_REQUIRE_SECRETS": "1",
           "OMBARO_JWT_SECRET": settings.jwt_secret, "OMBARO_DATA_KEYS": keys,
           "OMBARO_DATA_KEY_ID": settings.data_key_id, "OMBARO_LOG_FORMAT": "text",
           # The Redis database is the test run's: other tests' sign-ins from 127.0.0.1 count there.
           "OMBARO_LOGIN_LIMIT_PER_ADDRESS": "100000"}
    # The machine's clock: under `make test-clock` every process reads the moved time (tests/moved_clock.py),
    # the deployed engine too, or the tokens this process mints would come from its future.
    env.update({k: os.environ[k] for k in ("LD_PRELOAD", "FAKETIME", "DONT_FAKE_MONOTONIC") if k in os.environ})
    yield env, workdir


def test_installed_engine_migrates_serves_the_console_and_runs_a_job(
        venv_python: Path, deployed_env: tuple[dict[str, str], Path]) -> None:
    env, workdir = deployed_env
    bin_dir = venv_python.parent
    where = subprocess.run([venv_python, "-c", "import beat, migrations, ombaro, web, workers; "
                            "print('\\n'.join(m.__file__ for m in (beat, migrations, ombaro, web, workers)))"],
                           env=env, cwd=workdir, capture_output=True, text=True, check=True).stdout.split()
    venv_root = str(bin_dir.parent.resolve())
    assert all(path.startswith(venv_root) for path in where), where  # the install, not the checkout

    migrated = subprocess.run([bin_dir / "ombaro", "migrate"], env=env, cwd=workdir, capture_output=True,
                              text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "default grant(s) added" in migrated.stdout
    engine = create_engine(env["DATABASE_URL"], poolclass=NullPool)
    with engine.connect() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    newest = max(p.name.split("_")[0] for p in (PROJECT_ROOT / "migrations" / "versions").glob("0*.py"))
    assert head == newest
    assert not list((Path(venv_root) / "lib").glob("python*/site-packages/var"))  # nothing written there

    port = free_port()
    processes = [
        Installed("web", [str(bin_dir / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "4",
                          "web:create_app()"], env, workdir),
        Installed("worker", [str(bin_dir / "celery"), "-A", "workers", "worker", "-Q", "dispatch,bulk,maintenance",
                             "--concurrency", "1", "--loglevel", "INFO", "--without-heartbeat", "--without-gossip",
                             "--without-mingle",
                             "-n", f"deployed-{secrets.token_hex(3)}@%h"], env, workdir),
    ]
    try:
        processes[0].wait_for("Booting worker")
        processes[1].wait_for("ready.")
        base = f"http://127.0.0.1:{port}"
        # The first answer of a freshly booted worker may take long on a loaded machine (seen: more
        # than 5 s at load 15): slow is not wrong here, so each try waits as long as the whole wait.
        wait_until(lambda: requests.get(f"{base}/readyz", timeout=60).status_code == 200, timeout=60,
                   what="/readyz")

        staff = make_account(engine, "it_department")
        browser = requests.Session()
        form = browser.get(f"{base}/console/login", timeout=10).text
        assert 'name="password"' in form
        csrf = CSRF.search(form)
        assert csrf, "the login form has no CSRF token"
        signed_in = browser.post(f"{base}/console/login", allow_redirects=False, timeout=10,
                                 data={"email": staff.email, "password": PASSWORD, "csrf": csrf.group(1)})
        assert signed_in.status_code == 302, signed_in.text
        page = browser.get(f"{base}/console/jobs", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower() and "console.css" in page.text
        css = browser.get(f"{base}/console/static/console.css", timeout=10)
        assert css.status_code == 200 and "{" in css.text

        submitted = requests.post(f"{base}/api/v1/reports/refresh", json={}, timeout=10,
                                  headers={**staff.headers, "Idempotency-Key": f'"{secrets.token_hex(8)}"'})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]

        def finished() -> dict | None:
            job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=staff.headers, timeout=10).json()
            return job if job["status"] in ("succeeded", "failed") else None

        job = wait_until(finished, timeout=60, what=f"job {job_id} done by the installed worker")
        assert job["status"] == "succeeded", job
        assert job_id in processes[1].output()
    finally:
        for process in processes:
            process.stop()
        engine.dispose()
