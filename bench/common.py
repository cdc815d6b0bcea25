"""Shared by the benchmarks: where results go and how a table is written."""

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write(name: str, payload: dict[str, Any], markdown: str) -> None:
    """Write bench/results/NAME.json and NAME.md, and echo the markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def read(name: str) -> dict[str, Any]:
    """The committed bench/results/NAME.json: a choice one bench made that another applies."""
    return json.loads((RESULTS / f"{name}.json").read_text())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
