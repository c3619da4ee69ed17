"""The docs and the code agree where they name things.

README.md, docs/*.md and docs/results/*.md name recipes, schedule types, warmup types, recipe fields, baseline
cards, CLI commands, dotted Python names and files of the repository. Each test takes the truth from the code
through public entry points (the package namespace, the ``ftrecipes`` console script, the baseline registry) and
checks the docs against it, so a rename or a new recipe, schedule or command that the docs miss fails here.
Only light modules are imported: nothing here loads torch or transformers.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import inspect
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import pytest
from conftest import REPO

import ftrecipes

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md")), *sorted((DOCS / "results").glob("*.md"))]
README_MAX_LINES = 300
TEST_COMMAND_MARKER = "<!-- test-command -->"


# ------------------------------------------------------------------------------------------------
# Reading Markdown


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


@lru_cache(maxsize=None)
def code_of(path: Path) -> tuple[str, ...]:
    """The code in a page: every line of a fenced block and every inline code span, in order."""
    pieces: list[str] = []
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            pieces.append(line)
        else:
            pieces.extend(re.findall(r"`([^`]+)`", line))
    return tuple(pieces)


def prose_of(path: Path) -> str:
    """A page without its fenced blocks (links and headings live outside them)."""
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return "\n".join(out)


def section(path: Path, heading: str) -> str:
    """The text under the heading ``heading`` (any level) up to the next heading of the same or a higher level."""
    lines = prose_of(path).splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(#+)\s+(.*?)\s*$", line)
        if match and match.group(2) == heading:
            level = len(match.group(1))
            body = []
            for later in lines[i + 1 :]:
                deeper = re.match(r"^(#+)\s", later)
                if deeper and len(deeper.group(1)) <= level:
                    break
                body.append(later)
            return "\n".join(body)
    raise AssertionError(f"{_rel(path)} has no heading {heading!r}")


def table(text: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table in ``text``, without its header."""
    rows, started = [], False
    for line in text.splitlines():
        if line.startswith("|"):
            started = True
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif started:
            break
    assert len(rows) >= 2 and set(rows[1][0]) <= set("-: "), f"no table in:\n{text[:300]}"
    return rows[2:]


def unquote(cell: str) -> str:
    return cell.strip().strip("`")


def names_in_column(rows: list[list[str]], column: int = 0) -> list[str]:
    return [unquote(row[column]) for row in rows]


def backticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# ------------------------------------------------------------------------------------------------
# The truth, from public entry points


def shipped_recipes() -> set[str]:
    return set(ftrecipes.list_recipes())


def baseline_cards() -> set[str]:
    from ftrecipes.baselines.cards import list_cards

    return set(list_cards())


class _Parsed(BaseException):
    """Raised instead of parsing, to hand the console script's parser back (a BaseException, so no handler of
    the command swallows it)."""


@lru_cache(maxsize=None)
def cli_commands() -> frozenset[str]:
    """The subcommands of the ``ftrecipes`` console script, from the parser its entry point builds."""
    scripts = re.search(r"^\[project\.scripts\]\s*$(.*?)(?=^\[|\Z)", (REPO / "pyproject.toml").read_text(), re.M | re.S)
    assert scripts, "pyproject.toml declares no console scripts"
    target = re.search(r'^ftrecipes\s*=\s*"([\w.]+):(\w+)"', scripts.group(1), re.M)
    assert target, "pyproject.toml declares no `ftrecipes` console script"
    entry = getattr(importlib.import_module(target.group(1)), target.group(2))
    seen: list[argparse.ArgumentParser] = []

    def capture(self, *args, **kwargs):
        seen.append(self)
        raise _Parsed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        patch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        with pytest.raises(_Parsed):
            entry(["list"])
    sub = [a for a in seen[0]._actions if isinstance(a, argparse._SubParsersAction)]
    assert sub, "the `ftrecipes` parser has no subcommands"
    return frozenset(sub[0].choices)


def warmup_types() -> set[str]:
    """The warmup types the recipe accepts, as its own refusal of an unknown one lists them."""
    with pytest.raises(ftrecipes.ConfigError) as refused:
        ftrecipes.get_recipe("cls", warmup_type="no-such-warmup")
    listed = re.search(r"\[[^\]]*\]", str(refused.value))
    assert listed, f"the refusal lists no choices: {refused.value}"
    return set(ast.literal_eval(listed.group(0)))


# ------------------------------------------------------------------------------------------------
# README: the front door


def test_readme_is_a_front_door_with_the_ci_test_command():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines: reference goes to docs/, figures to docs/results/"
    )
    assert TEST_COMMAND_MARKER in (REPO / ".ci" / "run").read_text(), ".ci/run no longer reads the README's marker"
    # What .ci/run's awk takes: the first line after the marker that is not a code fence.
    after = lines[lines.index(TEST_COMMAND_MARKER) + 1 :]
    command = next(line for line in after if not line.startswith("```"))
    assert "pytest" in command, f"the line after {TEST_COMMAND_MARKER} is not the test command: {command!r}"


def test_readme_recipes_table_lists_every_shipped_recipe_once():
    listed = names_in_column(table(section(README, "Recipes")))
    assert sorted(listed) == sorted(shipped_recipes()), "README's recipes table vs `ftrecipes list`"
    assert len(listed) == len(set(listed))


# ------------------------------------------------------------------------------------------------
# Names the docs use


def _mentions(pattern: str) -> list[tuple[str, str]]:
    return [(_rel(page), m.group(1)) for page in PAGES for code in code_of(page) for m in re.finditer(pattern, code)]


def test_every_recipe_the_docs_name_exists():
    recipes = shipped_recipes()
    named = _mentions(r"--recipe[ =]([\w.\-/<>]+)") + _mentions(r"get_recipe\(\s*[\"']([^\"']+)[\"']")
    named += _mentions(r"(?:^|&&\s*|;\s*)ftrecipes\s+(?:show|plot)\s+([\w.\-/<>]+)")
    names = [
        (page, name)
        for page, name in named
        if "/" not in name and "<" not in name and not name.endswith((".yaml", ".yml")) and name.upper() != "NAME"
    ]
    assert names, "no recipe names found in the docs: the patterns are stale"
    unknown = [(page, name) for page, name in names if name not in recipes]
    assert not unknown, f"recipes the docs name that `ftrecipes list` does not have: {unknown}"


def test_every_baseline_card_the_docs_name_exists_and_the_table_lists_them_all():
    cards = baseline_cards()
    named = [(page, name) for page, name in _mentions(r"--card[ =]([\w.\-<>]+)") if "<" not in name and name != "NAME"]
    assert named, "no `--card NAME` found in the docs: the pattern is stale"
    unknown = [(page, name) for page, name in named if name not in cards]
    assert not unknown, f"cards the docs name that do not exist: {unknown}"
    rows = table(section(DOCS / "baselines.md", "The cards"))
    assert sorted(names_in_column(rows)) == sorted(cards), "docs/baselines.md's table vs the shipped cards"
    from ftrecipes.baselines.cards import load_card

    for row in rows:
        assert unquote(row[2]) == load_card(unquote(row[0]), check_flags=False).recipe, row


def test_schedule_types_table_is_every_type_with_its_options():
    rows = table(section(DOCS / "schedules.md", "Schedule types"))
    listed = names_in_column(rows)
    assert sorted(listed) == sorted(ftrecipes.SCHEDULE_TYPES), "docs/schedules.md's table vs ftrecipes.SCHEDULE_TYPES"
    for row in rows:
        build = ftrecipes.SCHEDULE_TYPES[unquote(row[0])]
        options = [p.name for p in inspect.signature(build).parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert backticked(row[1]) == options, f"options of {row[0]} (lr_scheduler_kwargs)"


def test_every_schedule_type_the_docs_name_exists():
    named = _mentions(r"--lr_scheduler_type[ =](\w+)") + _mentions(r"\blr_scheduler_type:\s*(\w+)")
    assert named, "no schedule type found in the docs: the patterns are stale"
    unknown = [(page, name) for page, name in named if name not in ftrecipes.SCHEDULE_TYPES]
    assert not unknown, f"schedule types the docs name that ftrecipes.SCHEDULE_TYPES lacks: {unknown}"


def test_warmup_types_table_is_what_the_recipe_accepts():
    listed = names_in_column(table(section(DOCS / "schedules.md", "Warmup types")))
    assert sorted(listed) == sorted(warmup_types())


def test_recipe_fields_table_is_every_field_with_its_default():
    rows = table(section(DOCS / "recipes.md", "Fields"))
    fields = {f.name: f for f in dataclasses.fields(ftrecipes.Recipe)}
    assert sorted(names_in_column(rows)) == sorted(fields), "docs/recipes.md's fields vs ftrecipes.Recipe"
    for row in rows:
        f = fields[unquote(row[0])]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert ast.literal_eval(unquote(row[1])) == default, f"default of {f.name}"


def test_every_ftrecipes_command_the_docs_name_is_a_subcommand():
    commands = cli_commands()
    # `ftrecipes CMD` where a command line starts: at the start of a code line or span, after a prompt, an
    # environment assignment or a shell operator (prose such as "an ftrecipes schedule" is not a command).
    start = r"(?:^|&&|\|\||[;|]|^\$|^(?:[A-Z_]+=\S*\s+)+)\s*"
    named = _mentions(start + r"ftrecipes\s+([a-z][\w-]*)")
    assert named, "no `ftrecipes <command>` found in the docs: the pattern is stale"
    unknown = sorted({(page, name) for page, name in named if name not in commands})
    assert not unknown, f"`ftrecipes` commands the docs name that the parser lacks ({sorted(commands)}): {unknown}"
    documented = names_in_column(table(section(DOCS / "cli.md", "Commands")))
    assert sorted(unquote(c).split()[-1] for c in documented) == sorted(commands), "docs/cli.md's table vs the parser"


def _resolves(dotted: str) -> bool:
    """``dotted`` is an importable module, or a name defined (or re-exported) at the top of one. Walks down from
    the package and imports only packages' ``__init__`` modules on the way (``find_spec`` imports the parent), never
    the module that holds the name, so nothing heavy loads."""
    parts = dotted.split(".")
    spec = importlib.util.find_spec(parts[0])
    for depth in range(1, len(parts) + 1):
        if spec is None:
            return False
        if depth == len(parts):
            return True
        child = ".".join(parts[: depth + 1])
        if spec.submodule_search_locations is not None:  # a package: the next part may be a submodule
            child_spec = importlib.util.find_spec(child)
            if child_spec is not None:
                spec = child_spec
                continue
        name = parts[depth]
        if spec.name == "ftrecipes":  # the package namespace exports lazily: ask it, without importing
            return name in dir(ftrecipes)
        return name in _top_level_names(spec.origin)
    return False


@lru_cache(maxsize=None)
def _top_level_names(origin: str) -> frozenset[str]:
    """Names a module defines or imports at its top level, read from its source (no import, so no torch)."""
    tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return frozenset(names)


def test_every_dotted_ftrecipes_name_the_docs_use_exists():
    named = sorted({(page, m) for page, m in _mentions(r"(?<![\w/.-])(ftrecipes(?:\.[A-Za-z_]\w*)+)")})
    assert named, "no dotted ftrecipes names found in the docs: the pattern is stale"
    unknown = [(page, name) for page, name in named if not _resolves(name)]
    assert not unknown, f"dotted names the docs use that no module defines: {unknown}"


# ------------------------------------------------------------------------------------------------
# Files and links


def test_every_repository_path_the_docs_name_exists():
    prefixes = "scripts|recipes|tests|docs|ftrecipes|\\.ci"
    named = _mentions(rf"(?<![\w/.-])((?:{prefixes})/[\w./-]*\w)")
    paths = [(page, path) for page, path in named if "<" not in path and "*" not in path]
    assert paths, "no repository paths found in the docs: the pattern is stale"
    missing = sorted({(page, path) for page, path in paths if not (REPO / path).exists()})
    assert not missing, f"paths the docs name that do not exist: {missing}"


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip()).lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return kept.replace(" ", "-")


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose_of(path).splitlines():
        match = re.match(r"^#+\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_anchor(match.group(1))
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return frozenset(out)


def test_every_relative_link_points_to_a_file_and_heading_that_exist():
    broken = []
    checked = 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose_of(page)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            checked += 1
            path_part, _, fragment = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                broken.append((_rel(page), target, "no such file"))
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append((_rel(page), target, "no such heading"))
    assert checked, "no relative links found: the pattern is stale"
    assert not broken, f"broken links: {broken}"


def test_every_docs_page_is_reachable_from_the_index():
    index = prose_of(DOCS / "index.md")
    linked = {(DOCS / target.partition("#")[0]).resolve() for target in re.findall(r"\]\(([^)\s#]+)", index)}
    pages = {p.resolve() for p in [*DOCS.glob("*.md"), *(DOCS / "results").glob("*.md")] if p.name != "index.md"}
    pages -= {p.resolve() for p in (DOCS / "results").glob("*.notes.md")}  # companions, linked from their summary
    assert sorted(_rel(p) for p in pages - linked) == []
