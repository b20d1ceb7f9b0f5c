"""A city's own class scheme: import it (its 311 service list, in its language) and make it the active one.

The active scheme is recorded in the deployment (``deployment.class_scheme``; the packaged ``cjt214`` until
another is activated). Intake validates a report's class against it, the classifier describes its classes by
their names and keywords, and Open311's services list is its classes (``webmap.open311``). Cases keep the
scheme they were filed in, so activating another scheme never changes a stored case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.components_survey import store
from citygrid.components_survey.taxonomy import DEFAULT_SCHEME, SCHEME_NAME, read_scheme_file
from citygrid.errors import InvalidInput, NotFound
from citygrid.loaders.plaintext import control_character

MAX_TITLE = 200


def import_scheme(conn: Connection, path: Path, *, scheme: str, title: str | None = None,
                  activate: bool = False) -> dict[str, Any]:
    """Load the class scheme in ``path`` (``taxonomy.read_scheme_file``: CSV or YAML) as ``scheme``, in the
    caller's transaction; with ``activate`` make it the deployment's active scheme.

    A scheme of that name is refreshed: its classes are added or updated, none is deleted (cases may refer to
    them). The packaged scheme cannot be replaced this way.

    Returns
    -------
    ``{"scheme", "classes", "events", "components", "active"}``.

    Raises
    ------
    InvalidInput : a bad scheme name or title, or a bad file (every problem listed); nothing is written then.
    """
    if not SCHEME_NAME.match(scheme or ""):
        raise InvalidInput(f"scheme name {scheme!r} must be 1–32 lower-case letters, digits, _ or -, e.g. nyc311",
                           field="scheme")
    if scheme == DEFAULT_SCHEME:
        raise InvalidInput(f"{DEFAULT_SCHEME} is the packaged scheme (data/taxonomy); import yours under another "
                           "name", field="scheme")
    title = (title or scheme).strip()
    if not title or len(title) > MAX_TITLE or control_character(title, single_line=True):
        raise InvalidInput(f"title must be 1–{MAX_TITLE} characters of plain text", field="title")
    classes = read_scheme_file(path)
    store.replace_scheme(conn, scheme, title, path.name, classes)
    if activate:
        store.set_active_scheme(conn, scheme)
    return {"scheme": scheme, "classes": len(classes), "events": sum(c.kind == "event" for c in classes),
            "components": sum(c.kind == "component" for c in classes),
            "active": store.active_scheme(conn, DEFAULT_SCHEME) == scheme}


def activate_scheme(conn: Connection, scheme: str) -> None:
    """Make the loaded ``scheme`` the deployment's active one; ``NotFound`` when it is not loaded."""
    if not store.scheme_exists(conn, scheme):
        raise NotFound(f"no class scheme {scheme!r}; load it with citygrid taxonomy import")
    store.set_active_scheme(conn, scheme)


def list_schemes(conn: Connection) -> list[dict[str, Any]]:
    """Loaded schemes with their class counts; ``active`` marks the deployment's."""
    active = store.active_scheme(conn, DEFAULT_SCHEME)
    return [{**s, "active": s["scheme"] == active} for s in store.schemes(conn)]
