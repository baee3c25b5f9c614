"""No Sphinx role in the sources, and the built-site checker catches what does not render.

mkdocstrings reads docstrings as Markdown: a Sphinx role (``:class:`X```)
prints as raw text on the API page. Cross-references are written
``[`X`][clerkguard.module.X]`` instead (``tools/roles_to_autorefs.py`` rewrites
roles mechanically). This test looks at the sources, so a role in a new module
fails even before that module is on the API page; ``make docs`` runs
``tools/check_site.py`` on the built HTML.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
ROLE = re.compile(r":(?:py:)?(?:class|data|func|meth|attr|mod|exc|obj|const):`[^`]+`")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sources() -> list[Path]:
    return [
        *sorted((REPO / "clerkguard").rglob("*.py")),
        *sorted((REPO / "examples").glob("*.py")),
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "README.md",
    ]


def test_no_sphinx_role_anywhere_users_read() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {match[0]}"
        for path in sources()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        for match in ROLE.finditer(line)
    ]
    assert not found, (
        "Sphinx roles do not render in mkdocstrings; write [`Name`][clerkguard.module.Name] "
        "(or run `make docs && .venv/bin/python tools/roles_to_autorefs.py`):\n" + "\n".join(found)
    )
    assert len(sources()) > 20  # the globs found the package, the examples and the pages


def test_site_checker_finds_what_did_not_render() -> None:
    check_site = _load("check_site")
    good = '<p>See <a href="#x"><code>ClerkAuth</code></a>.</p><pre><code>x[0][1]</code></pre>'
    assert check_site.problems(good) == []
    roles = "<p>The :class:<code>~clerkguard.ClerkAuth</code> and :meth:`verify`.</p>"
    assert [p.split(":")[0] for p in check_site.problems(roles)] == ["raw Sphinx role"] * 2
    unresolved = "<p>See [<code>Nope</code>][clerkguard.rules.Nope].</p>"
    assert check_site.problems(unresolved)[0].startswith("unresolved cross-reference")
    assert check_site.problems('<p><autoref identifier="x">x</autoref></p>')
    escaped = r"<table><tr><td><code>str \| None</code></td></tr></table>"
    assert check_site.problems(escaped)[0].startswith("literal \\| in a table cell")


def test_rewriter_links_documented_targets_and_keeps_the_rest_as_code(tmp_path: Path) -> None:
    roles = _load("roles_to_autorefs")
    assert roles.display("~clerkguard.adapters.Guard") == "Guard"
    assert roles.display("Guard.check") == "Guard.check"
    text = tmp_path / "page.md"
    text.write_text("Use :class:`~clerkguard.ClerkAuth` or :func:`x`.\n")
    assert roles.rewrite_text(text) == "Use `ClerkAuth` or `x`.\n"
    # A rewritten line that got too long is refilled as one paragraph, within ruff's limit.
    link = "[`Name`][clerkguard.adapters.Adapter.header]"
    long = ["    " + " ".join([link] * 4) + "\n", "    more words.\n"]
    refilled, used = roles.reflow(long, 0)
    assert used == 2
    assert all(len(line.rstrip("\n")) <= roles.LIMIT for line in refilled)
    assert "".join(refilled).split() == "".join(long).split()


def test_rewriter_drops_rst_literal_markers() -> None:
    roles = _load("roles_to_autorefs")
    lines = [
        "Use it like this::\n",
        "\n",
        "    code()\n",
        "::\n",
        "\n",
        "    more()\n",
        "a::b\n",
        "x\n",
        "y\n",
    ]
    changed = [False] * len(lines)
    roles._drop_literal_markers(lines, changed)
    assert lines == [
        "Use it like this:\n",
        "\n",
        "    code()\n",
        "\n",
        "\n",
        "    more()\n",
        "a::b\n",
        "x\n",
        "y\n",
    ]
    assert changed == [True, False, False, True, False, False, False, False, False]
