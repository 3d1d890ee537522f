"""What the quality benchmarks share: picking names from a comma-separated option, the
plain-text table they print and how they end (`report`)."""
from __future__ import annotations

import json
import sys


def pick(option: str, known, what: str) -> list[str] | None:
    """The names of a comma-separated option, in its order; None (after an error line
    naming the unknown ones and the choices) when one is not in `known`."""
    names = [s for s in option.split(",") if s]
    unknown = [s for s in names if s not in known]
    if unknown:
        print(f"error: unknown {what} {','.join(unknown)}; choose from {','.join(known)}", file=sys.stderr)
        return None
    return names


def format_table(rows: list[tuple[str, ...]], left: tuple[int, ...]) -> str:
    """Rows of cells (the first the header) as aligned columns under a rule: the columns in
    `left` flush left, the others (figures) flush right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(rows: list[tuple[str, ...]], left: tuple[int, ...], footnote: str, results: dict,
           json_path, ok: bool) -> int:
    """A quality benchmark's ending: the table, its footnote in brackets, the results as
    JSON where asked (`json_path`); returns the exit code (1 when a goal was missed)."""
    print(format_table(rows, left=left))
    print(f"\n({footnote})")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1
