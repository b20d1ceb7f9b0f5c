"""YAML from users (mapping files, form fields) read without the ways YAML can be made to eat the server.

PyYAML's ``safe_load`` builds no objects, but it still expands aliases: nine anchors of nine aliases each
(367 bytes) become 9⁹ strings once the result is walked or printed (24 s and 1.4 GB measured on the upload
path). Here the text is capped in size, any anchor or alias is refused at parse time (a mapping file has no
use for them), and nesting is capped in depth, all before one object is built.

No database here.
"""

from __future__ import annotations

from typing import Any

import yaml

from citygrid.errors import InvalidInput
from citygrid.loaders.plaintext import control_in

MAX_BYTES = 256 * 1024
MAX_DEPTH = 20


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses anchors, aliases and deep nesting while composing the node tree."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _Refused("aliases (*name) are not accepted", self.peek_event().start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise _Refused("aliases and anchors (&name, *name) are not accepted", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    def __init__(self, reason: str, mark: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = (mark.line + 1) if mark is not None else None


def load(text: str | bytes, *, what: str, field: str = "mapping") -> Any:
    """Parse ``text`` as YAML (JSON is YAML too) under the limits above.

    Parameters
    ----------
    text : the document.
    what : what it is, for messages ("mapping file m.yaml").
    field : the request field ``InvalidInput`` names.

    Raises
    ------
    InvalidInput : too large, aliases or anchors, too deep, or not YAML — with the line where known.
    """
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_BYTES:
        raise InvalidInput(f"{what} is larger than {MAX_BYTES // 1024} KiB ({size:,} bytes)", field=field)
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses unprintable characters already here
        data = loader.get_single_data()
    except _Refused as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise InvalidInput(f"{what}: {exc.reason}{where}", field=field) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid YAML or JSON: {exc}", field=field) from None
    finally:
        if loader is not None:
            loader.dispose()
    _check_text(data, what, field)
    return data


def _check_text(data: Any, what: str, field: str) -> None:
    """``InvalidInput`` for a control character that an escape (``"\\0"``, ``"\\ud800"``) put into a key or
    value (``loaders.plaintext.control_in``; the depth was bounded while parsing)."""
    found = control_in(data, max_depth=MAX_DEPTH + 1)
    if found is not None:
        where = f" at {found[0]}" if found[0] else ""
        raise InvalidInput(f"{what}{where} holds a control character ({found[1]})", field=field)
