"""What plain text may hold: the one rule every entry point applies (HTTP requests, YAML from users, reports).

Refused: the C0 control characters but tab, line feed and carriage return; DEL; and lone UTF-16 surrogates (a
JSON or YAML ``\\ud800`` escape), which no encoder, PostgreSQL's included, can write. PostgreSQL refuses a NUL
in text outright, which used to end requests in a 500.

No database here.
"""

from __future__ import annotations

import re
from typing import Any

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
LINE_BREAKS = re.compile("[\t\n\r]")


def control_character(text: str, *, single_line: bool = False) -> str | None:
    """A description of the first character ``text`` may not hold (``U+0000 at position 3``), or None.
    ``single_line``: tab, line feed and carriage return are refused too (codes, names, keys)."""
    match = CONTROL.search(text) or (LINE_BREAKS.search(text) if single_line else None)
    return f"U+{ord(match.group()):04X} at position {match.start()}" if match else None


class TooDeep(ValueError):
    """A nested value deeper than allowed; ``path`` says where."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def control_in(data: Any, *, max_depth: int) -> tuple[str, str] | None:
    """The first string of a parsed JSON/YAML value (keys included) holding a character plain text may not
    hold, as (path such as ``photos[0]`` or ``attrs.note``, ``control_character``'s description), or None.
    Iterative, so hostile nesting costs no recursion; ``TooDeep`` past ``max_depth`` levels."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > max_depth:
            raise TooDeep(path)
        if isinstance(value, str):
            if (what := control_character(value)) is not None:
                return path, what
        elif isinstance(value, dict):
            for key, item in value.items():
                name = str(key)
                if (what := control_character(name)) is not None:  # named by its repr: printable, encodable
                    return f"{path}.{name!r}" if path else repr(name), what
                stack.append((item, f"{path}.{name}" if path else name, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
    return None


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet will not run: text starting like a formula (=, +, @, tab, carriage
    return, or a - that does not start a number: ``-1+cmd|…`` runs too) gets a leading apostrophe; anything
    else is returned as it is. For every report a user downloads (census and case imports)."""
    if not isinstance(value, str) or not value:
        return value
    risky = value[0] in "=+@\t\r" or (value[0] == "-" and not _is_number(value))
    return "'" + value if risky else value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
