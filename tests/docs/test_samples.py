"""Every ```python block in docs/*.md and README.md runs, against a real local issuer.

Rules for everyone writing docs (every page is covered automatically):

* The blocks of one page run in order in ONE namespace, so a later block may
  use what an earlier one defined; each page starts from a fresh namespace.
  The module name is ``__docs_sample__``, so ``if __name__ == "__main__":
  app.run()`` is the way to show starting a server without running it.
* Prepared for every page:
    - environment: ``CLERK_PUBLISHABLE_KEY`` and ``CLERK_JWKS_URI`` point at a
      running :class:`clerkguard.testing.LocalIssuer` (so ``ClerkAuth()`` and
      every framework extension configured from the environment just work);
      every other ``CLERK_*`` variable is unset.
    - names: ``token``, a valid session token of that issuer for user
      ``user_123`` in organization ``org_123`` with role ``admin`` and the
      permissions ``org:invoices:read`` and ``org:reports:read`` (azp
      ``http://localhost:3000``); ``issuer``, the LocalIssuer itself
      (``issuer.mint(...)`` for other tokens).
* Top-level ``await`` works: such a block runs on an event loop shared by the page.
* Functions named ``test_*`` that a page defines are then called, with their
  arguments filled by name from ``clerk_issuer``, ``clerk_auth``,
  ``clerk_token`` (clerkguard's pytest fixtures, with their per-test
  semantics: faults reset, a fresh ``clerk_auth``), ``issuer``, ``token``,
  ``tmp_path`` and ``monkeypatch``; ``async def`` tests are awaited. A test
  shown in the docs therefore really passes.
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
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clerkguard.testing import Fault, LocalIssuer

REPO = Path(__file__).resolve().parents[2]
SKIP = re.compile(r"<!--\s*skip-sample\b.*?-->")
RAISES = re.compile(r"<!--\s*sample-raises:\s*(?P<name>[A-Za-z_][\w.]*)\s*-->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
PYTHON = {"python", "py", "python3"}
FIXTURE_NAMES = ("clerk_issuer", "clerk_auth", "clerk_token", "issuer", "token", "tmp_path", "monkeypatch")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    skipped: bool
    raises: str | None = None  # name of the exception the block must raise


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
        blocks.append(Block(path, i + 2, language, "\n".join(body) + "\n", skipped, raises))
        i = j + 1
    return blocks


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _runnable(path: Path) -> list[Block]:
    return [b for b in extract_blocks(path) if b.language in PYTHON and not b.skipped]


PAGES = [p for p in _pages() if _runnable(p)]


def _execute(block: Block, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
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


def _reset(issuer: LocalIssuer) -> None:
    # What the plugin's clerk_issuer fixture does around every test.
    issuer.set_fault(Fault())
    issuer.jwks_override = None
    issuer.reset_count()


def _call_test(
    name: str, function: Any, fixtures: dict[str, Any], loop: asyncio.AbstractEventLoop, where: str
) -> None:
    parameters = inspect.signature(function).parameters
    unknown = [p for p in parameters if p not in fixtures]
    if unknown:
        pytest.fail(
            f"{where}: {name}() asks for {unknown}; docs tests may use {', '.join(FIXTURE_NAMES)} "
            "(see the top of tests/docs/test_samples.py)"
        )
    # Fixture semantics per test, as under pytest: a clean issuer and a fresh, cold ClerkAuth.
    issuer: LocalIssuer = fixtures["clerk_issuer"]
    _reset(issuer)
    auth = issuer.auth()
    values = {**fixtures, "clerk_auth": auth}
    try:
        result = function(**{p: values[p] for p in parameters})
        if inspect.isawaitable(result):
            loop.run_until_complete(result)
    finally:
        auth.close()
        _reset(issuer)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    # Samples may leave tasks behind (e.g. a key refresher); finish them quietly.
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def run_page(blocks: list[Block], fixtures: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run a page's blocks in one namespace, then each ``test_*`` it defines; return their names."""
    # A real module, registered while the page runs: libraries that resolve
    # annotations through sys.modules[obj.__module__] see what a user's module gives.
    module = types.ModuleType("__docs_sample__")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    namespace.update(token=fixtures["token"], issuer=fixtures["issuer"])
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
    return called


@pytest.fixture
def sample_fixtures(
    clerk_issuer: LocalIssuer,
    clerk_auth: Any,
    clerk_token: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The prepared environment and names every page runs with (see the module docstring)."""
    for name in [n for n in os.environ if n.startswith("CLERK_")]:
        monkeypatch.delenv(name)
    for name, value in clerk_issuer.env().items():
        monkeypatch.setenv(name, value)
    token = clerk_issuer.mint(
        user_id="user_123",
        org_id="org_123",
        org_role="admin",
        permissions=["org:invoices:read", "org:reports:read"],
    )
    return {
        "clerk_issuer": clerk_issuer,
        "clerk_auth": clerk_auth,
        "clerk_token": clerk_token,
        "issuer": clerk_issuer,
        "token": token,
        "tmp_path": tmp_path,
        "monkeypatch": monkeypatch,
    }


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


def test_sync(clerk_auth, token):
    seen.append(clerk_auth.verify(token).user_id)
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
    page = "```python\ndef test_wrong(token):\n    assert token == 'something else'\n```\n"
    with pytest.raises(AssertionError):
        run_page(extract_blocks(Path("page.md"), page), sample_fixtures, monkeypatch)
    unknown = "```python\ndef test_needs(database):\n    pass\n```\n"
    with pytest.raises(pytest.fail.Exception, match=r"asks for \['database'\]"):
        run_page(extract_blocks(Path("page.md"), unknown), sample_fixtures, monkeypatch)
