"""Write one benchmark's section of docs/performance.md (between its markers), leaving the others alone."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
HEADER = """# Performance figures

Each section is written by the benchmark named in it, with the command that reproduces it. Every benchmark
measures its physical limit (raw SQL, Pillow alone, a bare websocket) in the same run and reports the ratio,
so the figures carry over to other machines. Goals: `../shared/domain/performance.md` Part 3.
"""


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/performance.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")
