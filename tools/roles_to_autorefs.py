"""Rewrite Sphinx roles (:class:`X`, :meth:`~a.b.c`...) as cross-references mkdocstrings resolves.

The API reference is rendered by mkdocstrings, which reads Markdown: a Sphinx
role shows up on the page as raw text. This rewrites every role, in place:

* in a docstring under ``clerkguard/``, to ``[`Name`][full.path]`` when the
  target is an object the built site documents (looked up in ``.site/objects.inv``,
  so run ``make docs`` first), resolved the way Python would from the place the
  role is written (griffe's scope resolution: the class, the module, its
  imports); otherwise, and in comments, to plain code (`` `Name` ``);
* in ``examples/`` and ``docs/`` (code a user reads as source), to plain code.

``~a.b.Name`` shows ``Name``; other targets show as written. Idempotent: run it
again after merging new code (``make docs && .venv/bin/python tools/roles_to_autorefs.py``);
``tools/check_site.py`` and ``tests/docs/test_no_sphinx_roles.py`` fail while any role is left.

Usage: ``python tools/roles_to_autorefs.py [--check] [--site .site]``
"""

from __future__ import annotations

import argparse
import re
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import griffe

REPO = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:py:)?(?P<kind>class|data|func|meth|attr|mod|exc|obj|const):`(?P<target>[^`]+)`")


def inventory(site: Path) -> set[str]:
    """The identifiers the built site can link to (a Sphinx ``objects.inv``)."""
    data = (site / "objects.inv").read_bytes()
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


class Resolver:
    """Turns a role's target into a documented identifier, or None."""

    def __init__(self, package: griffe.Module, documented: set[str]) -> None:
        self.package = package
        self.documented = documented
        self.by_canonical: dict[str, list[str]] = {}
        for name in documented:
            try:
                canonical = package.modules_collection[name].canonical_path
            except Exception:  # not a Python object (a heading anchor, say)
                continue
            self.by_canonical.setdefault(canonical, []).append(name)

    def innermost(self, module: griffe.Module, line: int) -> griffe.Object:
        best: griffe.Object = module
        for obj in _walk(module):
            start, end = obj.lineno, obj.endlineno
            if start is None or end is None or not start <= line <= end:
                continue
            # Docstrings written below an attribute belong to it (PEP 257 attribute docstrings).
            if best is module or (best.lineno or 0) <= start:
                best = obj
        return best

    def resolve(self, target: str, scope: griffe.Object) -> str | None:
        first, _, rest = target.partition(".")
        try:
            path = scope.resolve(first) if first != "clerkguard" else "clerkguard"
        except Exception:
            try:  # an absolute path that is not an import of this module
                path = self.package.modules_collection[target].path
                rest = ""
            except Exception:
                return None
        full = f"{path}.{rest}" if rest else path
        if full in self.documented:
            return full
        try:
            canonical = self.package.modules_collection[full].canonical_path
        except Exception:
            return None
        names = self.by_canonical.get(canonical, [])
        return min(names, key=lambda n: (n.count("."), n)) if names else None


def display(target: str) -> str:
    return target.rsplit(".", 1)[-1] if target.startswith("~") else target


LIMIT = 110  # ruff's line-length
TOKEN = re.compile(r"\[`[^`]*`\]\[[^\]]*\]\S*|`[^`]*`\S*|\S+")
ENTRY = re.compile(r"^\s*(?:\*\*?)?\w+(?: \([^)]*\))?: \S|^\s*[-*] ")


SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")  # "Args:", "Returns:"...


def _split(line: str) -> tuple[str, str, str]:
    """(indent, "#: " or "", text) of a line."""
    body = line.rstrip("\n")
    indent = body[: len(body) - len(body.lstrip())]
    text = body.lstrip()
    if text.startswith("#:"):
        return indent, "#: ", text[2:].lstrip()
    return indent, "", text


def _continues(line: str, indent: str, prefix: str) -> bool:
    """Whether ``line`` continues the paragraph whose continuation lines look like ``indent``+``prefix``."""
    own_indent, own_prefix, text = _split(line)
    return (
        bool(text)
        and own_indent == indent
        and own_prefix == prefix
        and not text.startswith('"""')
        and not ENTRY.match(text)
        and not SECTION.match(text)
        and not text.startswith((">>>", "```", "#"))
    )


def reflow(lines: list[str], i: int) -> tuple[list[str], int]:
    """Refill the paragraph starting at ``lines[i]`` (too long after the rewrite) to the line length.

    Returns the new lines and how many old lines they replace. Continuation
    lines keep the paragraph's shape: an "Args:" entry continues four spaces
    deeper (Google style), a list item two.
    """
    indent, prefix, text = _split(lines[i])
    if text.startswith(("- ", "* ")):
        more = "  "
    elif ENTRY.match(text):
        more = "    "
    else:
        more = ""
    words = TOKEN.findall(text)
    used = 1
    while (
        i + used < len(lines)
        and not lines[i + used - 1].rstrip().endswith('"""')
        and _continues(lines[i + used], indent + more, prefix)
    ):
        words += TOKEN.findall(_split(lines[i + used])[2])
        used += 1
    out: list[str] = []
    current = ""
    for word in words:
        lead = indent + prefix + (more if out else "")
        if current and len(lead) + len(current) + 1 + len(word) > LIMIT:
            out.append(lead + current + "\n")
            current = word
        else:
            current = f"{current} {word}" if current else word
    out.append(indent + prefix + (more if out else "") + current + "\n")
    return out, used


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _drop_literal_markers(lines: list[str], changed: list[bool]) -> None:
    """RST's ``text::`` + blank line + indented block: Markdown prints the ``::``.

    The indented block is a code block in Markdown too, so ``text::`` becomes
    ``text:`` and a line that is only ``::`` becomes empty.
    """
    for i, line in enumerate(lines[:-2]):
        text = line.strip()
        if not text.endswith("::") or lines[i + 1].strip() or not lines[i + 2].strip():
            continue
        if _indent(lines[i + 2]) <= _indent(line):
            continue
        lines[i] = "\n" if text == "::" else line.rstrip()[:-1] + "\n"
        changed[i] = True


def rewrite_python(path: Path, module: griffe.Module | None, resolver: Resolver | None) -> str:
    lines = []
    changed = []
    for number, line in enumerate(path.read_text().splitlines(keepends=True), start=1):
        comment = line.lstrip().startswith("#") and not line.lstrip().startswith("#:")

        def replace(match: re.Match[str], number: int = number, comment: bool = comment) -> str:
            target = match["target"].strip()
            shown = display(target)
            if module is not None and resolver is not None and not comment:
                resolved = resolver.resolve(target.lstrip("~"), resolver.innermost(module, number))
                if resolved is not None:
                    return f"[`{shown}`][{resolved}]"
            return f"`{shown}`"

        new = ROLE.sub(replace, line)
        lines.append(new)
        changed.append(new != line)
    _drop_literal_markers(lines, changed)
    out: list[str] = []
    i = 0
    while i < len(lines):
        if changed[i] and len(lines[i].rstrip("\n")) > LIMIT:
            refilled, used = reflow(lines, i)
            out += refilled
            i += used
        else:
            out.append(lines[i])
            i += 1
    return "".join(out)


def rewrite_text(path: Path) -> str:
    return ROLE.sub(lambda m: f"`{display(m['target'].strip())}`", path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=REPO / ".site", help="the built site (make docs)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a role is left")
    args = parser.parse_args(argv)

    package = griffe.load("clerkguard", search_paths=[str(REPO)], resolve_aliases=True)
    resolver = Resolver(package, inventory(args.site))
    changed: list[Path] = []
    for path in sorted((REPO / "clerkguard").rglob("*.py")):
        dotted = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        module = package.modules_collection[dotted]
        assert isinstance(module, griffe.Module)
        new = rewrite_python(path, module, resolver)
        if new != path.read_text():
            changed.append(path)
            if not args.check:
                path.write_text(new)
    for path in [*sorted((REPO / "examples").glob("*.py")), *sorted((REPO / "docs").glob("*.md"))]:
        new = rewrite_text(path)
        if new != path.read_text():
            changed.append(path)
            if not args.check:
                path.write_text(new)
    for path in changed:
        print(f"{'has roles' if args.check else 'rewrote'}: {path.relative_to(REPO)}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
