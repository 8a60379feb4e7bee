"""Measure what a reader meets in the notebooks: cell sizes, long lines, words of markdown, helpers names.

    python tests/notebook_stats.py [notebooks/]

prints one row per notebook and the totals the series holds itself to (see ``TARGETS``);
``tests/test_notebook_structure.py`` asserts the same numbers.
"""

from __future__ import annotations

import ast
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

#: The limits: median non-blank lines per code cell, characters per code line, words of markdown per notebook,
#: distinct helpers names imported by all notebooks together, and by 04 and 05 together.
TARGETS = {"median_code_lines": 6, "line_chars": 100, "markdown_words": 1200, "helpers_names": 80,
           "helpers_names_04_05": 30}


@dataclass
class NotebookStats:
    """What one notebook shows a reader."""

    name: str
    code_cells: int = 0
    code_lines: list[int] = field(default_factory=list)
    long_lines: list[str] = field(default_factory=list)
    markdown_words: int = 0
    helpers_names: set[str] = field(default_factory=set)

    @property
    def median_code_lines(self) -> float:
        return statistics.median(self.code_lines) if self.code_lines else 0.0


def code_cells(path: Path) -> list[str]:
    """The source of every code cell of the notebook at ``path``."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def helpers_imports(source: str) -> set[str]:
    """Names a code cell imports from ``helpers`` or its modules (``import helpers.x`` counts as ``helpers.x``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: scan the lines that parse
        tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "helpers":
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "helpers")
    return names


def measure(path: Path, line_chars: int = TARGETS["line_chars"]) -> NotebookStats:
    """Cell sizes, long lines, markdown words and helpers names of one notebook."""
    stats = NotebookStats(path.stem)
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            stats.markdown_words += len(source.split())
        elif cell["cell_type"] == "code":
            stats.code_cells += 1
            lines = [line for line in source.splitlines() if line.strip()]
            stats.code_lines.append(len(lines))
            stats.long_lines += [line for line in lines if len(line) > line_chars]
            stats.helpers_names |= helpers_imports(source)
    return stats


def measure_all(folder: Path = NOTEBOOKS) -> dict[str, NotebookStats]:
    return {p.stem: measure(p) for p in sorted(folder.glob("0*.ipynb"))}


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else NOTEBOOKS
    all_stats = measure_all(folder)
    print(f"{'notebook':18}{'code cells':>11}{'median lines':>13}{'max lines':>10}{'lines > ' + str(TARGETS['line_chars']):>12}"
          f"{'md words':>10}{'helpers names':>14}")
    for s in all_stats.values():
        print(f"{s.name:18}{s.code_cells:11}{s.median_code_lines:13}{max(s.code_lines, default=0):10}"
              f"{len(s.long_lines):12}{s.markdown_words:10}{len(s.helpers_names):14}")
    names = set().union(*(s.helpers_names for s in all_stats.values()))
    trt = set().union(*(s.helpers_names for k, s in all_stats.items() if k[:2] in ("04", "05")))
    print(f"distinct helpers names, all notebooks: {len(names)} (target <= {TARGETS['helpers_names']}); "
          f"04 + 05: {len(trt)} (target <= {TARGETS['helpers_names_04_05']})")
    print("names:", ", ".join(sorted(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
