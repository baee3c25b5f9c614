"""The pytest plugin's ``clerk_env``: an app configured at import time, tested as a user would.

Each test writes a small project into ``tmp_path`` and runs pytest on it in a
subprocess (the plugin is found through its ``pytest11`` entry point, as for a
user), with real-looking production ``CLERK_*`` variables in the outer
environment that the run must neither use nor lose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

APP = """\
from flask import Flask

from clerkguard.flask import ClerkGuard, current_auth, require_auth

app = Flask(__name__)
ClerkGuard(app)  # configured from CLERK_* when this module is imported


@app.get("/me")
@require_auth
def me():
    return {"user_id": current_auth.user_id}
"""

TEST_APP = """\
import os

from app import app


def test_a_token_of_the_local_issuer_is_accepted(clerk_token):
    headers = {"Authorization": f"Bearer {clerk_token(user_id='user_1')}"}
    assert app.test_client().get("/me", headers=headers).get_json() == {"user_id": "user_1"}


def test_production_variables_are_out_of_the_way(clerk_issuer):
    clerk = {name: value for name, value in os.environ.items() if name.startswith("CLERK_")}
    assert clerk == clerk_issuer.env()
"""

# Imports the app at the top, like many conftest.py files: loaded before pytest_configure.
CONFTEST = """\
import atexit
import json
import os

from app import app  # noqa: F401


@atexit.register
def _record_environment_after_the_run():
    clerk = {name: value for name, value in os.environ.items() if name.startswith("CLERK_")}
    with open("env-after.json", "w") as f:
        json.dump(clerk, f)
"""

PRODUCTION = {
    "CLERK_PUBLISHABLE_KEY": "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
    "CLERK_SECRET_KEY": "sk_live_not_a_real_secret",
    "CLERK_AUTHORIZED_PARTIES": "https://app.example.com",
}


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "PYTEST_"))}
    env.update(PRODUCTION)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# An app built inside a test (an application factory) uses the clerk_env fixture instead.
TEST_FACTORY = """\
import os

from clerkguard import ClerkAuth


def test_factory(clerk_env, clerk_token):
    assert os.environ["CLERK_PUBLISHABLE_KEY"] == clerk_env["CLERK_PUBLISHABLE_KEY"]
    assert "CLERK_SECRET_KEY" not in os.environ
    assert ClerkAuth().verify(clerk_token(user_id="user_f")).user_id == "user_f"
"""


def write_project(project: Path, *, ini: str = "") -> None:
    (project / "app.py").write_text(APP)
    (project / "test_app.py").write_text(TEST_APP)
    (project / "test_factory.py").write_text(TEST_FACTORY)
    (project / "conftest.py").write_text(CONFTEST)
    (project / "pyproject.toml").write_text(f"[tool.pytest.ini_options]\n{ini}")


def test_clerk_env_ini_option_configures_the_app_before_conftest_imports_it(tmp_path: Path) -> None:
    write_project(tmp_path, ini="clerk_env = true\n")
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    # The user's own variables are back once pytest is done.
    assert json.loads((tmp_path / "env-after.json").read_text()) == PRODUCTION


def test_the_command_line_flag_does_the_same(tmp_path: Path) -> None:
    write_project(tmp_path)
    result = run_pytest(tmp_path, "--clerk-env")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_without_it_the_app_is_configured_from_the_real_environment(tmp_path: Path) -> None:
    # The production key derives a real issuer: the local issuer's tokens are refused,
    # which is exactly why the option exists (and why it is off unless asked for).
    write_project(tmp_path)
    (tmp_path / "conftest.py").unlink()
    result = run_pytest(tmp_path, "-k", "accepted or factory")
    assert result.returncode == 1, result.stdout + result.stderr
    # The factory test passes on its own fixture; the import-time app refuses the token.
    assert "1 failed, 1 passed" in result.stdout
    assert "test_a_token_of_the_local_issuer_is_accepted" in result.stdout
