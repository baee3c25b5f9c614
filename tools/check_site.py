"""Fail when the built documentation site shows markup that did not render.

``mkdocs build --strict`` already fails on a cross-reference autorefs cannot
resolve (as long as it is not run with ``--quiet``, which hides the warning
from the strict check). This looks at the HTML itself for what slips through:

* raw Sphinx roles (``:class:`X```, ``:meth:`...```): mkdocstrings reads
  Markdown, so a role is printed as text;
* a Markdown reference link left as text (``[`X`][clerkguard.x]``), an
  ``<autoref>`` element autorefs did not replace;
* a literal ``\\|`` in a table cell (Markdown tables do not unescape it inside
  code spans).

Usage: ``python tools/check_site.py .site`` (``make docs`` runs it).
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

ROLE = re.compile(r":(?:py:)?(?:class|data|func|meth|attr|mod|exc|obj|const|ref|doc):(?:`|<code>)")
UNRESOLVED = re.compile(r"\]\[(?:clerkguard\.|\.)[\w.]*\]|</code>\]\[[\w.]*\]|<autoref\b")
PRE = re.compile(r"<pre\b.*?</pre>", re.DOTALL)
CELL = re.compile(r"<td\b[^>]*>(.*?)</td>", re.DOTALL)


def problems(page: str) -> list[str]:
    """What is wrong with one HTML page, as short descriptions."""
    found: list[str] = []
    text = html.unescape(page)
    for match in ROLE.finditer(text):
        found.append(f"raw Sphinx role: {_around(text, match.start())}")
    prose = PRE.sub("", page)  # code samples may legitimately index twice: x[0][1]
    for match in UNRESOLVED.finditer(prose):
        found.append(f"unresolved cross-reference: {_around(prose, match.start())}")
    for cell in CELL.findall(prose):
        if "\\|" in cell:
            found.append(f"literal \\| in a table cell: {_around(cell, cell.index(chr(92) + '|'))}")
    return found


def _around(text: str, at: int) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", text[max(0, at - 60) : at + 80]).split())


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else ".site")
    pages = sorted(site.rglob("*.html"))
    if not pages:
        print(f"check_site: no HTML under {site}: build the site first (make docs)")
        return 1
    bad = 0
    for path in pages:
        for problem in problems(path.read_text(encoding="utf-8")):
            print(f"{path.relative_to(site)}: {problem}")
            bad += 1
    if bad:
        print(f"check_site: {bad} problem(s) in {site}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
