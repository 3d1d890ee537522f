"""What the quality benchmarks share: picking names from a comma-separated option, and the
plain-text table they print."""
from __future__ import annotations

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
