"""Build the sdist and the wheel, check them, and use the wheel as a user would.

``make dist`` runs this (and ``make test`` runs ``make dist``):

1. ``python -m build`` (sdist, then the wheel built from the sdist) into ``dist/``;
2. ``twine check --strict`` on both, and a look inside: the license file, the
   PEP 639 license expression, ``py.typed``, the ``pytest11`` entry point, no
   tests or docs in the wheel;
3. a fresh virtual environment outside the checkout, with the wheel and all its
   extras installed (pinned by ``requirements/constraints.txt``, from the pip
   cache when it has them): ``import clerkguard`` and every extra's module,
   the ``clerkguard`` console script, and the pytest plugin's fixtures;
4. acceptance: every docs page that shows a project as files
   (```python title="app.py"``, ``title="test_app.py"``,
   ```toml title="pyproject.toml"``) is copied, unchanged, into an empty
   directory and its tests run green with that venv's pytest, against the
   installed wheel (checked: ``clerkguard.__file__`` is in the venv).

Usage: ``python tools/check_dist.py`` from the repository root.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
NOT_EXTRAS = {"all", "dev", "bench"}  # extras that are not one framework integration


def run(*command: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure print its output and stop."""
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        sys.exit(f"check_dist: failed ({result.returncode}): {' '.join(map(str, command))}")
    return result.stdout


START = time.monotonic()


def step(message: str) -> None:
    print(f"check_dist: [{time.monotonic() - START:5.1f}s] {message}", flush=True)


def user_env() -> dict[str, str]:
    """The environment of a user's shell: nothing pointing into this checkout, no CLERK_*."""
    drop = ("CLERK_", "PYTEST_", "PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def build() -> tuple[Path, Path]:
    shutil.rmtree(DIST, ignore_errors=True)
    # The isolated build environment honours the pins too (setuptools).
    env = {**os.environ, "PIP_CONSTRAINT": str(CONSTRAINTS)}
    run(sys.executable, "-m", "build", "--outdir", DIST, REPO, env=env)
    (sdist,) = DIST.glob("clerkguard-*.tar.gz")
    (wheel,) = DIST.glob("clerkguard-*-py3-none-any.whl")
    return sdist, wheel


def wheel_metadata(wheel: Path, version: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(f"clerkguard-{version}.dist-info/METADATA").decode()


def inspect_wheel(wheel: Path, version: str) -> None:
    run(sys.executable, "-m", "twine", "check", "--strict", *sorted(DIST.iterdir()))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"clerkguard-{version}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    problems = []
    if "License-Expression: MIT" not in metadata:
        problems.append("no 'License-Expression: MIT' in METADATA")
    if "Classifier: License ::" in metadata:
        problems.append("a license classifier next to the license expression (deprecated by PEP 639)")
    if f"{info}/licenses/LICENSE" not in names:
        problems.append("LICENSE is not in the wheel")
    if "clerkguard/py.typed" not in names:
        problems.append("py.typed is not in the wheel")
    if "clerkguard = clerkguard.pytest_plugin" not in entry_points:
        problems.append("the pytest11 entry point is missing")
    if any(n.startswith(("tests/", "docs/", "examples/", "tools/")) for n in names):
        problems.append("tests, docs, examples or tools leaked into the wheel")
    if problems:
        sys.exit("check_dist: " + "; ".join(problems))


def fresh_venv(where: Path, wheel: Path, extras: list[str]) -> Path:
    venv = where / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one (no second copy of pip needed).
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--disable-pip-version-check",
        "-c", CONSTRAINTS, f"{wheel}[{','.join(extras)}]", "pytest", "pytest-asyncio",
    )  # fmt: skip
    return python


def check_installed(python: Path, venv: Path, extras: list[str], scratch: Path) -> None:
    modules = ["clerkguard", "clerkguard.testing", "clerkguard.pytest_plugin", "clerkguard.adapters"]
    modules += [f"clerkguard.{extra}" for extra in extras]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(venv)!r}), (name, module.__file__)\n"
        "print(sys.modules['clerkguard'].__version__)\n"
    )
    run(python, "-c", code, cwd=scratch, env=user_env())
    run(venv / "bin" / "clerkguard", "--version", cwd=scratch, env=user_env())
    fixtures = run(
        python, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", cwd=scratch, env=user_env()
    )
    missing = [f for f in ("clerk_issuer", "clerk_auth", "clerk_token", "clerk_env") if f not in fixtures]
    if missing:
        sys.exit(f"check_dist: the installed pytest plugin does not provide {missing}")


def docs_projects() -> dict[str, dict[str, str]]:
    """Page name -> {file name: content} for every page showing a project with a test file."""
    spec = importlib.util.spec_from_file_location("docs_samples", REPO / "tests" / "docs" / "test_samples.py")
    assert spec is not None
    assert spec.loader is not None
    samples: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = samples  # dataclasses look their module up there
    spec.loader.exec_module(samples)
    projects: dict[str, dict[str, str]] = {}
    for page in sorted((REPO / "docs").glob("*.md")):
        files = {
            block.title: block.code
            for block in samples.extract_blocks(page)
            if block.title is not None and not block.skipped and "/" not in block.title
        }
        if any(name.startswith("test_") and name.endswith(".py") for name in files):
            projects[page.name] = files
    return projects


def run_docs_projects(python: Path, venv: Path, scratch: Path) -> None:
    projects = docs_projects()
    if "flask.md" not in projects:
        sys.exit("check_dist: the Flask quickstart (app.py + test_app.py) is gone from docs/flask.md")
    for page, files in projects.items():
        project = scratch / page.removesuffix(".md")
        project.mkdir()
        for name, content in files.items():
            (project / name).write_text(content)
        where = run(
            python, "-c", "import clerkguard; print(clerkguard.__file__)", cwd=project, env=user_env()
        )
        if not where.startswith(str(venv)):
            sys.exit(f"check_dist: {page}: clerkguard imported from {where.strip()}, not the installed wheel")
        output = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=user_env())
        step(f"docs/{page}: {' + '.join(sorted(files))} copied as is: {output.strip().splitlines()[-1]}")


def main() -> int:
    sdist, wheel = build()
    version = wheel.name.split("-")[1]
    provided = [line.split(":", 1)[1].strip() for line in wheel_metadata(wheel, version).splitlines()
                if line.startswith("Provides-Extra:")]  # fmt: skip
    extras = [e for e in provided if e not in NOT_EXTRAS]
    step(f"built {sdist.name} and {wheel.name}")
    inspect_wheel(wheel, version)
    step("twine check --strict passed; wheel holds LICENSE, py.typed, the pytest plugin, no tests")
    with tempfile.TemporaryDirectory(prefix="clerkguard-dist-") as tmp:
        where = Path(tmp)
        python = fresh_venv(where, wheel, extras)
        scratch = where / "scratch"
        scratch.mkdir()
        check_installed(python, where / "venv", extras, scratch)
        step(f"fresh venv with clerkguard[{','.join(extras)}]: imports, console script and fixtures OK")
        run_docs_projects(python, where / "venv", scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
