"""Summarise a py-spy raw profile (``--format raw``) of the ingest server: where the busy samples go.

    .venv/bin/python -m bench.profile_summary /tmp/ingest_profile.raw

Each sample is one stack of one busy thread (py-spy leaves idle threads out). The table gives, per bucket,
the share of busy samples whose stack passes through it (a sample counts once per bucket; buckets nest, so
shares overlap), and the top functions by self samples.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# (bucket, pattern on the "function (file:line)" frames of a stack) — first match per frame wins.
BUCKETS: list[tuple[str, str]] = [
    ("start-up (imports, app factory)", r"Config\.load_app|create_app \(gridcity/root/app\.py"),
    ("photo work: prepare_photo (limit)", r"prepare_photo \(gridcity/photos\.py"),
    ("  of it: SHA-256 inside prepare_photo", r"inspect_photo \(gridcity/photos\.py"),
    (
        "photo files written or linked (fsync'd)",
        r"write_files \(casework/attachments\.py|MediaStore\.put(_file)? \(gridcity/storage\.py",
    ),
    ("SHA-256 outside prepare_photo (leaf: the service's own hashing)", r"LEAF:(_sha_of|photo_shas|prepare_uploads)"),
    ("multipart parsing (worker thread)", r"mobile_api/forms\.py"),
    ("reading the upload into bytes (_read)", r"_read \(mobile_api/router\.py"),
    ("write transaction (idempotency.run: case, event, attachment)", r"idempotency\.py"),
    ("auth + read before photo work", r"get_current_user|current_user|deps\.py"),
    ("event loop: HTTP parsing, chunk batching", r"httptools_impl|h11_impl|uvicorn/protocols"),
    ("commit (request dependency)", r"commit \(sqlalchemy"),
]


def parse(path: Path) -> list[tuple[list[str], int]]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        out.append((frames[1:], int(n)))  # frames[0] is the thread
    return out


def summarise(path: Path, top: int = 15) -> str:
    samples = parse(path)
    total = sum(n for _, n in samples)
    startup = sum(n for f, n in samples if any(re.search(BUCKETS[0][1], x) for x in f))
    busy = total - startup
    lines = [
        f"busy samples after start-up: {busy} (start-up {startup})",
        "",
        "| where | share of busy samples |",
        "|---|---|",
    ]
    work = [(f, c) for f, c in samples if not any(re.search(BUCKETS[0][1], x) for x in f)]
    for name, pat in BUCKETS[1:]:
        if pat.startswith("LEAF:"):
            rx = re.compile(pat[5:])
            n = sum(c for f, c in work if f and rx.match(f[-1]))
        else:
            rx = re.compile(pat)
            n = sum(c for f, c in work if any(rx.search(x) for x in f))
        lines.append(f"| {name} | {100 * n / busy:.1f} % |")
    selfc: Counter[str] = Counter()
    for f, c in samples:
        if f and not any(re.search(BUCKETS[0][1], x) for x in f):
            selfc[re.sub(r":\d+\)$", ")", f[-1])] += c
    lines += ["", "| top functions by self samples | share |", "|---|---|"]
    lines += [f"| `{fn}` | {100 * c / busy:.1f} % |" for fn, c in selfc.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1])))
