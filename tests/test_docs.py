"""Every citation in the package resolves to a heading or a decision in ``docs/``.

The code cites the project's documents by name and section (``store-api.md §8.3``,
``till-protocol.md §4``; older comments say ``FN spec §N``, meaning ``fn-protocol.md``) and by
decision number (``D1``–``D57`` and ``T1``–``T14`` in ``store-api.md``, ``O1``… and ``B1``… in
``orders-and-backoffice.md``). A bare ``§N`` belongs to the document named last before it in
the same paragraph (text up to a blank line), or else to the home document of the file's package
(``HOME``); with neither it is reported, so name the document. Sections of foreign documents
(``FFD §16``, ``v2 doc §3.2``, ``MQTT 5 §3.9.3``, ``ФН-1.2.06 §5.3``) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "kkt_emulator"

PROJECT_DOCS = (
    "fn-protocol.md",
    "store-api.md",
    "till-protocol.md",
    "support-cases.md",
    "orders-and-backoffice.md",
)
# Which document defines a bare decision number.
DECISION_HOME = {
    "D": "store-api.md",
    "T": "store-api.md",
    "O": "orders-and-backoffice.md",
    "B": "orders-and-backoffice.md",
}

# The document a bare ``§N`` means, by where the citing file lives (the longest prefix wins).
HOME = {
    "kkt_emulator/cloud/": "store-api.md",
    "kkt_emulator/cli/cloud_cmd.py": "store-api.md",
    "kkt_emulator/cli/cabinet_cmd.py": "store-api.md",
    "kkt_emulator/app/scenarios/": "support-cases.md",
    "kkt_emulator/fn/": "fn-protocol.md",
    "kkt_emulator/fnio/": "fn-protocol.md",
    "kkt_emulator/ofd/": "fn-protocol.md",
    "kkt_emulator/till/": "till-protocol.md",
    "kkt_emulator/control/": "till-protocol.md",
}
# Citations in today's code that point at nothing in the project's documents; each is for the
# owner of its file to fix. The test fails when one is fixed, so that the entry is removed here.
KNOWN_BROKEN = {
    ("kkt_emulator/control/broker.py", "ARCHITECTURE.md"),
}

_NUMBER = r"\d+(?:\.\d+)*"
_DOC_NAME = re.compile(
    r"\b(?P<name>fn-protocol|store-api|till-protocol|support-cases|orders-and-backoffice)"
    r"(?P<ext>\.md)?\b|\bFN spec\b"
)
_ANY_MD = re.compile(r"(?<![\w/.-])(?P<name>[\w-]+\.md)\b")
_SECTION = re.compile(rf"§§?\s*(?P<first>{_NUMBER})(?:\s*[–-]\s*§?\s*(?P<last>{_NUMBER}))?")
_FOREIGN = re.compile(r"(?:FFD|ФФД|v\d+ doc|MQTT\s*\d*|ФН-[\d.]+|RFC\s*\d+)[\s`,]*$")
_DECISION = re.compile(r"\b(?P<kind>[DTOB])(?P<number>[1-9]\d*)\b")
_HEADING = re.compile(rf"^#{{1,6}}\s+(?P<number>{_NUMBER})\.?\s")
_DEFINED_DECISION = re.compile(
    r"^\|\s*(?P<a>[DTOB]\d+)\s*\||\*\*(?:Project decision\s+)?(?P<b>[DTOB]\d+)\b"
)


@dataclass(frozen=True)
class Doc:
    """The headings and decisions of one document in ``docs/``."""

    sections: frozenset[str]
    decisions: frozenset[str]


@dataclass(frozen=True)
class Broken:
    """One citation that does not resolve."""

    path: str
    line: int
    citation: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.citation!r}: {self.reason}"


@cache
def load_doc(name: str) -> Doc | None:
    path = DOCS / name
    if not path.is_file():
        return None
    sections: set[str] = set()
    decisions: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if heading := _HEADING.match(line):
            sections.add(heading["number"])
        for match in _DEFINED_DECISION.finditer(line):
            decisions.add(match["a"] or match["b"])
    return Doc(frozenset(sections), frozenset(decisions))


def _doc_mentions(text: str) -> list[tuple[int, int, str]]:
    """Every project-document name in ``text`` as ``(start, end, file name)``."""
    mentions = []
    for match in _DOC_NAME.finditer(text):
        name = f"{match['name']}.md" if match["name"] else "fn-protocol.md"
        mentions.append((match.start(), match.end(), name))
    return mentions


def home_of(path: str) -> str | None:
    """The document a bare ``§N`` in ``path`` means when its paragraph names none."""
    prefixes = [prefix for prefix in HOME if path.startswith(prefix)]
    return HOME[max(prefixes, key=len)] if prefixes else None


def _context_doc(
    text: str, mentions: list[tuple[int, int, str]], position: int, home: str | None
) -> str | None:
    paragraph_start = text.rfind("\n\n", 0, position)
    before = [name for start, _, name in mentions if paragraph_start < start < position]
    return before[-1] if before else home


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def check_source(path: str, text: str) -> list[Broken]:
    """All broken citations in one source text."""
    broken: list[Broken] = []
    mentions = _doc_mentions(text)
    home = home_of(path)
    for _, end, name in mentions:
        if load_doc(name) is None:
            broken.append(Broken(path, _line_of(text, end), name, "no such document in docs/"))
    for match in _ANY_MD.finditer(text):
        name = match["name"]
        if name in PROJECT_DOCS:
            continue  # checked above, by its mention
        if not (DOCS / name).is_file() and not (ROOT / name).is_file():
            line = _line_of(text, match.start())
            broken.append(Broken(path, line, name, "no such document in docs/"))
    for match in _SECTION.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if _FOREIGN.search(text[line_start : match.start()]):
            continue
        cited = _context_doc(text, mentions, match.start(), home)
        line = _line_of(text, match.start())
        if cited is None:
            broken.append(Broken(path, line, match[0], "a section with no document named"))
            continue
        doc = load_doc(cited)
        if doc is None:
            continue  # already reported as a missing document
        broken.extend(
            Broken(path, line, f"{cited} §{number}", "no such heading")
            for number in filter(None, (match["first"], match["last"]))
            if number not in doc.sections
        )
    for match in _DECISION.finditer(text):
        name = DECISION_HOME[match["kind"]]
        doc = load_doc(name)
        decision = match["kind"] + match["number"]
        if doc is None or decision not in doc.decisions:
            line = _line_of(text, match.start())
            broken.append(Broken(path, line, decision, f"no such decision in {name}"))
    return broken


def test_every_project_document_is_in_docs() -> None:
    missing = [name for name in PROJECT_DOCS if load_doc(name) is None]
    assert not missing, f"missing from docs/: {missing}"


def test_every_citation_in_the_package_resolves() -> None:
    broken: list[Broken] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        broken.extend(check_source(path.relative_to(ROOT).as_posix(), text))
    new = [item for item in broken if (item.path, item.citation) not in KNOWN_BROKEN]
    assert not new, "citations that do not resolve in docs/:\n" + "\n".join(map(str, new))
    fixed = KNOWN_BROKEN - {(item.path, item.citation) for item in broken}
    assert not fixed, f"fixed, so remove from KNOWN_BROKEN: {sorted(fixed)}"


def test_the_decision_tables_are_complete() -> None:
    store = load_doc("store-api.md")
    orders = load_doc("orders-and-backoffice.md")
    assert store is not None
    assert orders is not None
    assert {f"D{n}" for n in range(1, 55)} <= store.decisions
    assert {f"T{n}" for n in range(1, 15)} <= store.decisions
    assert {f"O{n}" for n in range(1, 11)} <= orders.decisions
    assert {f"B{n}" for n in range(1, 9)} <= orders.decisions


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"""As store-api.md §8.3 says (D30)."""', []),
        ("# FN spec §11.2 and §12.1", []),
        ("# FFD §16 and v2 doc §3.2, MQTT 5 §3.9.3", []),
        ("# store-api.md §8.2–§8.7, T1–T14", []),
        ("# support-cases §5 row 6", []),
        ("# store-api.md §99.1", ["store-api.md §99.1"]),
        ("# store-api.md §8.2–§8.99", ["store-api.md §8.99"]),
        ("# FN spec §77", ["fn-protocol.md §77"]),
        ("# see D999 and T40", ["D999", "T40"]),
        ("# see O42", ["O42"]),
        ("# nothing-here.md", ["nothing-here.md"]),
        ("# §3 of what?", ["§3"]),
        ("# store-api.md §8.3\n\n# §12.1 is another paragraph", ["§12.1"]),
    ],
)
def test_the_checker_finds_broken_citations(source: str, expected: list[str]) -> None:
    found = [item.citation for item in check_source("example.py", source)]
    assert found == expected


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("kkt_emulator/cloud/x.py", "# §8.3 and §99", ["store-api.md §99"]),
        ("kkt_emulator/fn/x.py", "# §11.2 and §99", ["fn-protocol.md §99"]),
        ("kkt_emulator/cloud/x.py", "# till-protocol.md §2, then §8.3", ["till-protocol.md §8.3"]),
    ],
)
def test_a_bare_section_means_the_home_document(
    path: str, source: str, expected: list[str]
) -> None:
    assert [item.citation for item in check_source(path, source)] == expected
