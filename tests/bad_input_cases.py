"""The shape of a bad-input case and the one-line check every refusal passes (shared by the catalogue in
tests/job/test_bad_input.py and the tests of other layers that refuse input the same way)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Case:
    argv: list[str]  # appended to the working base command (argparse: the later flag wins)
    field: str  # what the line must name first, right after "error: "
    pattern: str  # regex the line must match
    given: str | None = None  # a value the fix must not suggest again
    env: dict[str, str | None] = field(default_factory=dict)
    unsupported_precision: bool = False  # pretend this machine has no bf16/fp16 (the row is about such machines)


def snapshot(folder: Path):
    return (
        sorted((p.relative_to(folder).as_posix(), p.read_bytes()) for p in folder.rglob("*"))
        if folder.is_dir()
        else None
    )


def assert_one_line(err: str, prog: str, case: Case) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"{prog}: error: {case.field}"), line
    assert re.search(case.pattern, line), line
    head, _, rest = line.partition(": error: ")
    assert "; " in rest, f"no fix in {line!r}"
    given = case.given
    if given is None and case.field in case.argv[:-1]:  # by default the value given to the flag named
        given = case.argv[case.argv.index(case.field) + 1]
    if given is not None:
        fix = rest.split("; ", 1)[1]
        assert not any(f"{lead}{given}{tail}" in f"{fix} " for lead in " ('" for tail in " ),'"), (
            f"the fix repeats {given}: {line!r}"
        )
    return line
