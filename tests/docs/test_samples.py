"""Every ```python block in docs/*.md and README.md runs, as a user would run it.

Rules for everyone writing docs (every page is covered automatically):

* The blocks of one page run in order in ONE namespace, so a later block may
  use what an earlier one defined; each page starts from a fresh namespace.
  The module name is ``__docs_sample__``, so ``if __name__ == "__main__":
  app.run()`` is the way to show starting a server without running it.
* Nothing is injected: a page gets exactly what a user of the installed
  package gets. The environment is the one clerkguard's pytest plugin gives a
  test run with ``clerk_env = true`` (the documented way to test an app that
  configures itself at import time): ``CLERK_PUBLISHABLE_KEY`` and
  ``CLERK_JWKS_URI`` point at the session's local issuer (the one behind the
  ``clerk_issuer`` fixture), every other ``CLERK_*`` variable is unset. A page
  that needs a token outside a test starts its own, visible issuer
  (``LocalIssuer().start()``, ``os.environ.update(issuer.env())``); the whole
  environment is restored and such issuers are stopped after the page.
* A block whose info string names a Python file (```python title="app.py")
  is a file of the user's project: it is written to a fresh directory on
  ``sys.path`` and imported as that module (``from app import app`` then works
  in a later block, e.g. ``title="test_app.py"``); its public names also land
  in the page namespace. Such blocks cannot use top-level ``await``.
* Top-level ``await`` works in other blocks: they run on an event loop shared by the page.
* Functions named ``test_*`` that a page defines are then called, with their
  arguments filled by name from the fixtures a user has: those of
  clerkguard's pytest plugin (``clerk_issuer``, ``clerk_auth``,
  ``clerk_token``, ``clerk_env``, ``clerk_webhook_signer``, with their
  per-test semantics: faults reset, a fresh ``clerk_auth``, the environment
  undone) and pytest's ``tmp_path``
  and ``monkeypatch``; ``async def`` tests are awaited. A test shown in the
  docs therefore really passes, and passes for a user.
* Opt-out, rare: an HTML comment on the line(s) right before the fence,
  ``<!-- skip-sample: why -->`` (or just ``<!-- skip-sample -->``), only for
  a snippet that needs a real Clerk account or a running server, or that is
  deliberately incomplete (a fragment showing one method). Everything else
  must run. Blocks in other languages (```sh, ```toml, ```text) never run.
* A block that demonstrates an error says so on the line(s) before it:
  ``<!-- sample-raises: TypeError -->``; it then must raise exactly that
  exception type (or a subclass), and the page continues.
* Fences may be indented (inside admonitions); the info string may carry
  attributes (```python title="app.py"). ``py`` and ``python3`` count as Python.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import os
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clerkguard.testing import Fault, LocalIssuer, WebhookSigner

REPO = Path(__file__).resolve().parents[2]
SKIP = re.compile(r"<!--\s*skip-sample\b.*?-->")
RAISES = re.compile(r"<!--\s*sample-raises:\s*(?P<name>[A-Za-z_][\w.]*)\s*-->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
PYTHON = {"python", "py", "python3"}
TITLE = re.compile(r"""\btitle=["']?(?P<title>[^"'\s]+)""")
MODULE_FILE = re.compile(r"^[A-Za-z_]\w*\.py$")
PLUGIN = REPO / "clerkguard" / "pytest_plugin.py"
# What a user's test can ask for: the plugin's public fixtures and these builtins of pytest's.
PYTEST_BUILTINS = ("tmp_path", "monkeypatch")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    skipped: bool
    raises: str | None = None  # name of the exception the block must raise
    title: str | None = None  # title="app.py": a file of the user's project

    @property
    def module(self) -> str | None:
        """The module name a ``title="name.py"`` block is imported as, else None."""
        if self.title is not None and MODULE_FILE.match(self.title):
            return self.title.removesuffix(".py")
        return None


def extract_blocks(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of ``path`` (or of ``text``), with its language and opt-out."""
    lines = (path.read_text() if text is None else text).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = (match["info"].split() or [""])[0].lstrip(".{").lower()
        title = match_title["title"] if (match_title := TITLE.search(match["info"])) else None
        # The opt-out marker sits on the nearest non-blank line above the fence.
        above = i - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        marker = lines[above] if above >= 0 else ""
        skipped = SKIP.search(marker) is not None
        raises = match_raises[1] if (match_raises := RAISES.search(marker)) else None
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = lines[j].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        blocks.append(Block(path, i + 2, language, "\n".join(body) + "\n", skipped, raises, title))
        i = j + 1
    return blocks


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _runnable(path: Path) -> list[Block]:
    return [b for b in extract_blocks(path) if b.language in PYTHON and not b.skipped]


PAGES = [p for p in _pages() if _runnable(p)]


def _import_file(block: Block, namespace: dict[str, Any]) -> None:
    """A ``title="name.py"`` block: written into the page's project directory and imported."""
    project = namespace.get("__docs_project__")
    assert isinstance(project, Path), f"{block.path.name}:{block.line}: no project directory for the page"
    assert block.module is not None
    (project / block.title).write_text(block.code)  # type: ignore[operator]
    importlib.invalidate_caches()
    sys.modules.pop(block.module, None)
    module = importlib.import_module(block.module)
    namespace.update({k: v for k, v in vars(module).items() if not k.startswith("_")})


def _execute(block: Block, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    if block.module is not None:
        _import_file(block, namespace)
        return
    # Pad with newlines so tracebacks point at the real line of the .md file.
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    if code.co_flags & inspect.CO_COROUTINE:
        loop.run_until_complete(eval(code, namespace))
    else:
        exec(code, namespace)


def _run_block(block: Block, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    if block.raises is None:
        _execute(block, namespace, loop)
        return
    where = f"{block.path.name}:{block.line}"
    try:
        _execute(block, namespace, loop)
    except Exception as exc:
        names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
        names |= {c.__qualname__ for c in type(exc).__mro__}
        if block.raises not in names:
            raise AssertionError(f"{where}: expected {block.raises}, got {type(exc).__name__}") from exc
    else:
        pytest.fail(f"{where}: the block is marked sample-raises: {block.raises} but raised nothing")


def plugin_fixture_names() -> list[str]:
    """The public fixtures clerkguard's pytest plugin defines (read from its source)."""
    names = []
    for node in ast.parse(PLUGIN.read_text()).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any(d.startswith("pytest.fixture") for d in decorators):
                names.append(node.name)
    return names


@contextlib.contextmanager
def _reset(issuer: LocalIssuer) -> Iterator[None]:
    # What the plugin's clerk_issuer fixture does around every test.
    key, kid, extra = issuer.key, issuer.kid, list(issuer.extra_keys)
    issuer.set_fault(Fault())
    issuer.jwks_override = None
    issuer.reset_count()
    issuer.reset_backend()
    try:
        yield
    finally:
        issuer.set_fault(Fault())
        issuer.jwks_override = None
        issuer.reset_backend()
        issuer.key, issuer.kid, issuer.extra_keys = key, kid, extra


@contextlib.contextmanager
def user_fixtures(fixtures: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Fresh per-test values of every fixture a user's test may ask for, as pytest gives them."""
    issuer: LocalIssuer = fixtures["clerk_issuer"]
    with _reset(issuer), pytest.MonkeyPatch.context() as env:
        auth = issuer.auth()

        def clerk_env() -> dict[str, str]:
            for name in [n for n in os.environ if n.startswith("CLERK_")]:
                env.delenv(name)
            for name, value in issuer.env().items():
                env.setenv(name, value)
            return issuer.env()

        def clerk_webhook_signer() -> WebhookSigner:
            signer = WebhookSigner()
            env.setenv("CLERK_WEBHOOK_SIGNING_SECRET", signer.secret)
            return signer

        try:
            yield {
                "clerk_issuer": issuer,
                "clerk_auth": auth,
                "clerk_token": lambda **options: issuer.mint(**options),
                "clerk_env": clerk_env,  # called only when asked for, as a fixture would be
                "clerk_webhook_signer": clerk_webhook_signer,  # likewise: it sets an env variable
                "tmp_path": fixtures["tmp_path"],
                "monkeypatch": fixtures["monkeypatch"],
            }
        finally:
            auth.close()


def _call_test(
    name: str, function: Any, fixtures: dict[str, Any], loop: asyncio.AbstractEventLoop, where: str
) -> None:
    parameters = inspect.signature(function).parameters
    allowed = [*plugin_fixture_names(), *PYTEST_BUILTINS]
    unknown = [p for p in parameters if p not in allowed]
    if unknown:
        pytest.fail(
            f"{where}: {name}() asks for {unknown}; a user has {', '.join(allowed)} "
            "(see the top of tests/docs/test_samples.py)"
        )
    with user_fixtures(fixtures) as values:
        lazy = ("clerk_env", "clerk_webhook_signer")
        arguments = {p: values[p]() if p in lazy else values[p] for p in parameters}
        result = function(**arguments)
        if inspect.isawaitable(result):
            loop.run_until_complete(result)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    # Samples may leave tasks behind (e.g. a key refresher); finish them quietly.
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _forget_project(project: Path) -> None:
    # The page's files are modules only for this page (another page has its own app.py).
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file is not None and Path(file).parent == project:
            del sys.modules[name]
    with contextlib.suppress(ValueError):
        sys.path.remove(str(project))


def run_page(blocks: list[Block], fixtures: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run a page's blocks in one namespace, then each ``test_*`` it defines; return their names."""
    # A real module, registered while the page runs: libraries that resolve
    # annotations through sys.modules[obj.__module__] see what a user's module gives.
    module = types.ModuleType("__docs_sample__")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    project = fixtures["tmp_path"] / "project"
    project.mkdir(exist_ok=True)
    namespace["__docs_project__"] = project
    sys.path.insert(0, str(project))
    environment = dict(os.environ)
    called: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        for block in blocks:
            before = dict(namespace)
            _run_block(block, namespace, loop)
            for name, value in list(namespace.items()):
                if name.startswith("test_") and callable(value) and before.get(name) is not value:
                    _call_test(name, value, fixtures, loop, f"{block.path.name}:{block.line}")
                    called.append(name)
    finally:
        _close_loop(loop)
        _forget_project(project)
        for value in namespace.values():
            if isinstance(value, LocalIssuer) and value is not fixtures["clerk_issuer"]:
                value.stop()
        os.environ.clear()
        os.environ.update(environment)
    return called


@pytest.fixture
def sample_fixtures(
    clerk_issuer: LocalIssuer, clerk_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """What every page runs with: the environment of a ``clerk_env = true`` test run.

    ``clerk_env`` here stands for the session-wide option (``pytest --clerk-env``),
    which does the same before any module is imported.
    """
    return {"clerk_issuer": clerk_issuer, "tmp_path": tmp_path, "monkeypatch": monkeypatch}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_python_samples_run(
    page: Path, sample_fixtures: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_page(_runnable(page), sample_fixtures, monkeypatch)


# -- the extractor itself ------------------------------------------------------------------------
SAMPLE = """\
Intro.

```python
a = 1
```

<!-- skip-sample: needs a real Clerk instance -->

```python
raise SystemExit("never runs")
```

!!! note
    ```py title="inside.py"
    b = a + 1
    ```

```sh
echo not python
```

````python
c = "```"
````

<!-- sample-raises: ZeroDivisionError -->
```python
1 / 0
```
"""


def test_extractor_reads_languages_indentation_and_opt_outs() -> None:
    blocks = extract_blocks(Path("sample.md"), SAMPLE)
    assert [(b.language, b.skipped, b.raises, b.code, b.line) for b in blocks] == [
        ("python", False, None, "a = 1\n", 4),
        ("python", True, None, 'raise SystemExit("never runs")\n', 10),
        ("py", False, None, "b = a + 1\n", 15),
        ("sh", False, None, "echo not python\n", 19),
        ("python", False, None, 'c = "```"\n', 23),
        ("python", False, "ZeroDivisionError", "1 / 0\n", 28),
    ]


def test_sample_raises_is_enforced() -> None:
    loop = asyncio.new_event_loop()
    try:
        block = extract_blocks(Path("sample.md"), SAMPLE)[-1]
        _run_block(block, {}, loop)  # raises ZeroDivisionError as promised: passes
        with pytest.raises(AssertionError, match="expected KeyError, got ZeroDivisionError"):
            _run_block(Block(block.path, block.line, "python", block.code, False, "KeyError"), {}, loop)
        with pytest.raises(pytest.fail.Exception, match="raised nothing"):
            _run_block(Block(block.path, block.line, "python", "x = 1\n", False, "KeyError"), {}, loop)
    finally:
        loop.close()


def test_every_page_is_looked_at() -> None:
    # Guards against the glob silently matching nothing (then no sample would ever run).
    names = {p.name for p in _pages()}
    assert {"README.md", "index.md", "configuration.md", "testing.md"} <= names
    assert any(p.name == "index.md" for p in PAGES)


PAGE_WITH_TESTS = """\
```python
seen = []


def test_sync(clerk_auth, clerk_token):
    seen.append(clerk_auth.verify(clerk_token(user_id="user_123")).user_id)
```

```python
async def test_async(clerk_auth, clerk_token):
    seen.append((await clerk_auth.averify(clerk_token(user_id="user_async"))).user_id)


import asyncio

await asyncio.sleep(0)  # top-level await: this block runs on the page's event loop
value = 42
```
"""


def test_tests_defined_by_a_page_are_called(
    sample_fixtures: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = extract_blocks(Path("page.md"), PAGE_WITH_TESTS)
    assert run_page(blocks, sample_fixtures, monkeypatch) == ["test_sync", "test_async"]
    module = sys.modules["__docs_sample__"]
    assert module.seen == ["user_123", "user_async"]
    assert module.value == 42


def test_a_failing_docs_test_fails(sample_fixtures: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    page = "```python\ndef test_wrong(clerk_token):\n    assert clerk_token() == 'something else'\n```\n"
    with pytest.raises(AssertionError):
        run_page(extract_blocks(Path("page.md"), page), sample_fixtures, monkeypatch)
    # A name the docs runner once injected, but no user has: refused.
    for name in ("database", "token", "issuer"):
        unknown = f"```python\ndef test_needs({name}):\n    pass\n```\n"
        with pytest.raises(pytest.fail.Exception, match=rf"asks for \['{name}'\]"):
            run_page(extract_blocks(Path("page.md"), unknown), sample_fixtures, monkeypatch)


def test_nothing_is_injected_into_a_page(
    sample_fixtures: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = "```python\ntoken\n```\n"
    with pytest.raises(NameError, match="token"):
        run_page(extract_blocks(Path("page.md"), page), sample_fixtures, monkeypatch)


def test_the_runner_offers_exactly_the_plugins_fixtures(sample_fixtures: dict[str, Any]) -> None:
    # A fixture added to the plugin must be added to user_fixtures (and the other way round).
    with user_fixtures(sample_fixtures) as values:
        assert set(values) == {*plugin_fixture_names(), *PYTEST_BUILTINS}
    assert {"clerk_issuer", "clerk_auth", "clerk_token", "clerk_env"} <= set(plugin_fixture_names())


PAGE_WITH_FILES = """\
```python title="app.py"
from clerkguard import ClerkAuth

auth = ClerkAuth()  # configured from CLERK_* when the module is imported
```

```python title="test_app.py"
from app import auth


def test_app(clerk_token):
    assert auth.verify(clerk_token(user_id="user_file")).user_id == "user_file"


def test_env(clerk_env, clerk_issuer):
    assert clerk_env == clerk_issuer.env()
```

```python
import os

os.environ["CLERK_SECRET_KEY"] = "sk_test_changed_by_the_page"
```
"""


def test_titled_blocks_are_files_of_the_users_project(
    sample_fixtures: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = extract_blocks(Path("page.md"), PAGE_WITH_FILES)
    assert [(b.title, b.module) for b in blocks] == [
        ("app.py", "app"),
        ("test_app.py", "test_app"),
        (None, None),
    ]
    assert run_page(blocks, sample_fixtures, monkeypatch) == ["test_app", "test_env"]
    project = sample_fixtures["tmp_path"] / "project"
    assert (project / "app.py").read_text() == blocks[0].code
    # Forgotten after the page: the next page's app.py is its own; the environment is back.
    assert "app" not in sys.modules
    assert "test_app" not in sys.modules
    assert str(project) not in sys.path
    assert "CLERK_SECRET_KEY" not in os.environ
