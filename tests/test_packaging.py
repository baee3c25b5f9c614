"""Release hygiene that a build would not catch: one version, its changelog entry, the CI matrix.

``make dist`` (tools/check_dist.py) builds, checks and installs the wheel; these
checks are about the files around it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

import clerkguard

REPO = Path(__file__).resolve().parents[1]


def project_table() -> str:
    text = (REPO / "pyproject.toml").read_text()
    return text.split("[project]", 1)[1].split("\n[", 1)[0]


def test_the_version_is_defined_once() -> None:
    project = project_table()
    assert re.search(r"^version\s*=", project, re.MULTILINE) is None, "pyproject must not repeat the version"
    assert 'dynamic = ["version"]' in project
    assert 'version = { attr = "clerkguard.__version__" }' in (REPO / "pyproject.toml").read_text()
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?", clerkguard.__version__)


def test_the_changelog_has_the_version() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(clerkguard.__version__)}\b", changelog, re.MULTILINE)


def test_the_license_is_an_spdx_expression_with_its_file() -> None:
    project = project_table()
    assert re.search(r'^license = "MIT"$', project, re.MULTILINE)
    assert 'license-files = ["LICENSE"]' in project
    assert "License ::" not in project  # PEP 639: no license classifiers next to the expression
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_ci_runs_make_test_on_every_supported_python() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert any("make test" in step.get("run", "") for step in job["steps"])
    assert True in workflow or "on" in workflow  # YAML 1.1 reads the `on:` key as True
    requires = re.search(r'^requires-python = ">=(\d+\.\d+)"', project_table(), re.MULTILINE)
    assert requires is not None
    assert requires[1] == "3.10"
