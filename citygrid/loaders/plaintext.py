"""What plain text may hold: the one rule every entry point applies (HTTP requests, YAML from users, reports).

Refused: the C0 control characters but tab, line feed and carriage return; DEL; and lone UTF-16 surrogates (a
JSON or YAML ``\\ud800`` escape), which no encoder, PostgreSQL's included, can write. PostgreSQL refuses a NUL
in text outright, which used to end requests in a 500.

No database here.
"""

from __future__ import annotations

import re

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
LINE_BREAKS = re.compile("[\t\n\r]")


def control_character(text: str, *, single_line: bool = False) -> str | None:
    """A description of the first character ``text`` may not hold (``U+0000 at position 3``), or None.
    ``single_line``: tab, line feed and carriage return are refused too (codes, names, keys)."""
    match = CONTROL.search(text) or (LINE_BREAKS.search(text) if single_line else None)
    return f"U+{ord(match.group()):04X} at position {match.start()}" if match else None
