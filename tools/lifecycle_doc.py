"""Writes the task lifecycle's state diagram and transition table into docs/design.md, from core.domain.lifecycle itself:
the document cannot drift from the rules the stores apply (a test checks it is what this script writes).

Run `make docs` after changing core/domain/lifecycle.py.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
BEGIN = "<!-- lifecycle: written by tools/lifecycle_doc.py from functions/core/domain/lifecycle.py -->"
END = "<!-- lifecycle: end -->"


def _state(status: object) -> str:
    return "[*]" if status is None else str(status)


def render() -> str:
    sys.path.insert(0, str(ROOT / "functions"))
    from core.domain.lifecycle import TRANSITIONS

    lines = [BEGIN, "```mermaid", "stateDiagram-v2"]
    for transition in TRANSITIONS.values():
        for source in transition.sources:
            for target in transition.targets:
                lines.append(f"    {_state(source)} --> {_state(target)}: {transition.write.value}")
    lines += [
        "```",
        "",
        "| write | from → to | made by | applies when (DynamoDB condition) | why |",
        "|---|---|---|---|---|",
    ]
    for transition in TRANSITIONS.values():
        moves = (
            ", ".join(_state(s) for s in transition.sources) + " → " + ", ".join(_state(t) for t in transition.targets)
        )
        condition = transition.condition.replace("|", "\\|")
        by, why = html.escape(transition.by), html.escape(transition.why)
        lines.append(f"| `{transition.write.value}` | {moves} | {by} | `{condition}` | {why} |")
    lines.append(END)
    return "\n".join(lines)


def rewrite(text: str) -> str:
    """`text` with its lifecycle block replaced by the rendered one."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render() + text[end:]


def main() -> None:
    DESIGN.write_text(rewrite(DESIGN.read_text()))


if __name__ == "__main__":
    main()
