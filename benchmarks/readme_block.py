"""Rewriting a generated block of the README, shared by the benchmarks that write result tables."""

from __future__ import annotations

from pathlib import Path


def rewrite_block(readme: Path, start: str, end: str, command: str, body: str) -> None:
    """Replace what stands between the ``start`` and ``end`` markers of ``readme`` with ``body``,
    under a comment naming the ``command`` that wrote it."""
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: no '{start}' ... '{end}' block to rewrite")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n<!-- written by `{command}`; do not edit -->\n{body}\n{end}{tail}")
    print(f"rewrote the {start} block of {readme}")
