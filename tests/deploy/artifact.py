"""Build the engine's wheel and install it into a fresh virtual environment outside the checkout,
as a deployment would (docs/deploying.md). Offline after the first run: the build tools and every
dependency are kept in a wheelhouse (OMBARO_WHEELHOUSE, default ~/.cache/ombaro/wheelhouse) that
`pip download` fills once from the package index, and every build and install reads only it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from ombaro.config import PROJECT_ROOT

BUILD_TOOLS = ("setuptools>=68", "wheel")


def wheelhouse() -> Path:
    path = Path(os.environ.get("OMBARO_WHEELHOUSE") or Path.home() / ".cache" / "ombaro" / "wheelhouse")
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd="/")


def _checked(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def source_copy(target: Path) -> Path:
    """The checkout's files as git sees them (tracked, and new files not ignored), without .venv,
    var/, build/ or stale egg-info: what a clean clone would build."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, check=True).stdout.decode()
    target.mkdir(parents=True)
    archive = target.parent / "source.tar"
    with tarfile.open(archive, "w") as tar:
        for name in filter(None, listed.split("\0")):
            if (PROJECT_ROOT / name).is_file():
                tar.add(PROJECT_ROOT / name, arcname=name)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    return target


def build_wheel(out: Path, scratch: Path) -> Path:
    """`pip wheel` of a clean copy of the checkout, its build tools from the wheelhouse."""
    house = wheelhouse()
    offline = ("--no-index", "--find-links", house)
    if pip("download", "--quiet", "-d", house, *offline, *BUILD_TOOLS).returncode != 0:
        _checked(pip("download", "--quiet", "-d", house, *BUILD_TOOLS), "downloading the build tools")
    source = source_copy(scratch / "source")
    _checked(pip("wheel", "--no-deps", *offline, "-w", out, source), "pip wheel")
    shutil.rmtree(source)
    (wheel,) = out.glob("ombaro_ops-*.whl")
    return wheel


def fresh_venv(wheel: Path, venv: Path) -> Path:
    """A new virtual environment (no system site-packages) with the wheel and its dependencies
    installed from the wheelhouse; the wheelhouse is filled from the index only when it lacks one."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    house = wheelhouse()
    install = ("--python", python, "install", "--quiet", "--no-index", "--find-links", house, wheel)
    if pip(*install).returncode != 0:
        _checked(pip("download", "--quiet", "-d", house, "--find-links", house, wheel), "filling the wheelhouse")
        _checked(pip(*install), "installing the wheel")
    return python
