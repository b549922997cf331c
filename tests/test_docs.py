"""The docs tell the truth about the code: README stays short and links every docs page,
and docs/configuration.md's table lists exactly the settings the code reads, with their
real defaults."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from bot import MIB, Settings
from dream_engine.core import presets
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
README_LIMIT = 8192  # bytes

VARIABLE = re.compile(r"(?:DISCORD|DREAM|RAY)_[A-Z0-9_]+")
LINK = re.compile(r"\]\(([^)\s]+)\)")
EMPTY = {"", "empty", "none"}  # how the table writes "no value" (None or "")
NOT_SETTINGS = {"DREAM_PRESETS"}  # read by dream_engine/core/presets.py, not by Settings


def read_variables() -> set[str]:
    """Every environment variable the bot and the engine read: a string that is exactly a
    variable's name (messages that mention one, like "DREAM_EXECUTOR=ray needs Ray", are not)."""
    sources = [
        REPO / "bot.py",
        *(REPO / "dream_engine").rglob("*.py"),
        *(REPO / "cogs").rglob("*.py"),
    ]
    return {
        name
        for source in sources
        for name in re.findall(r'"([A-Z0-9_]+)"', source.read_text(encoding="utf-8"))
        if VARIABLE.fullmatch(name)
    }


def documented() -> dict[str, str]:
    """Variable -> its default cell, from the table in docs/configuration.md."""
    table: dict[str, str] = {}
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (name := re.fullmatch(r"`(\w+)`", cells[0])):
            assert name[1] not in table, f"{name[1]} is in the table twice"
            table[name[1]] = cells[1].strip("`").strip()
    return table


def field_of_variable() -> dict[str, str]:
    """Variable -> the `Settings` field it sets, read from `Settings.from_env`'s source: the
    keyword of `cls(...)` whose value reads it, directly or through a local variable."""
    tree = ast.parse((REPO / "bot.py").read_text(encoding="utf-8"))
    from_env = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "from_env"
    )

    def variables_in(node: ast.AST) -> set[str]:
        return {
            child.value
            for child in ast.walk(node)
            if isinstance(child, ast.Constant)
            and isinstance(child.value, str)
            and VARIABLE.fullmatch(child.value)
        }

    locals_read: dict[str, set[str]] = {}
    for node in ast.walk(from_env):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    locals_read.setdefault(target.id, set()).update(variables_in(node.value))
    call = next(
        node.value
        for node in ast.walk(from_env)
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Call)
    )
    mapping: dict[str, str] = {}
    for keyword in call.keywords:
        read = variables_in(keyword.value)
        for name in ast.walk(keyword.value):
            if isinstance(name, ast.Name):
                read |= locals_read.get(name.id, set())
        for variable in read:
            assert variable not in mapping, f"{variable} sets {mapping[variable]} and {keyword.arg}"
            mapping[variable] = keyword.arg
    return mapping


def test_every_variable_the_code_reads_is_documented_and_no_other():
    read, table = read_variables(), set(documented())
    assert "DISCORD_TOKEN" in read and "DREAM_PRESETS" in read  # the scan finds them
    assert read - table == set(), f"add to docs/configuration.md: {sorted(read - table)}"
    assert table - read == set(), f"not read by the code: {sorted(table - read)}"


def test_every_settings_field_has_its_variable():
    mapping = field_of_variable()
    fields = {field.name for field in dataclasses.fields(Settings)}
    assert set(mapping.values()) == fields, fields ^ set(mapping.values())
    assert set(mapping) | NOT_SETTINGS == read_variables()


def expected_default(variable: str, field: dataclasses.Field) -> object:
    if field.default is dataclasses.MISSING:
        return dataclasses.MISSING
    if variable.endswith("_MB"):  # the variable is in MiB, the field in bytes
        return field.default / MIB
    return field.default


@pytest.mark.parametrize("variable", sorted(field_of_variable()))
def test_each_documented_default_is_the_real_one(variable):
    field = {field.name: field for field in dataclasses.fields(Settings)}[
        field_of_variable()[variable]
    ]
    cell, expected = documented()[variable], expected_default(variable, field)
    if expected is dataclasses.MISSING:
        assert cell == "required", f"{variable} has no default: write 'required'"
    elif expected is None or expected == "":
        assert cell.lower() in EMPTY, f"{variable}: default is empty, the table says {cell!r}"
    elif isinstance(expected, bool) or not isinstance(expected, int | float):
        assert cell == str(expected), f"{variable}: default {expected!r}, the table says {cell!r}"
    else:
        assert float(cell) == expected, f"{variable}: default {expected!r}, the table says {cell!r}"


def test_presets_default_is_the_repository_folder(monkeypatch):
    monkeypatch.delenv("DREAM_PRESETS", raising=False)
    assert (REPO / documented()["DREAM_PRESETS"]).resolve() == presets.presets_dir().resolve()


def links(page: Path) -> list[str]:
    return LINK.findall(page.read_text(encoding="utf-8"))


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_readme_links_to_docs_resolve_and_link_every_page():
    linked = {
        (REPO / target.split("#")[0]).resolve()
        for target in links(README)
        if target.startswith("docs/")
    }
    for target in linked:
        assert target.is_file(), f"README.md links to a missing {target.relative_to(REPO)}"
    pages = {page.resolve() for page in DOCS.glob("*.md")}
    unlinked = sorted(page.name for page in pages - linked)
    assert not unlinked, f"docs pages README.md does not link: {unlinked}"


def anchors(page: Path) -> set[str]:
    """The `#anchors` of a page's headings, as GitHub makes them."""
    text = page.read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda page: page.name)
def test_relative_links_resolve(page):
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.exists(), f"{page.name} links to a missing {target}"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.name}: no heading for {target}"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda page: page.name)
def test_each_page_says_what_it_is(page):
    lines = [line for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# ") and not lines[1].startswith(("#", "|", "```", "-")), page
