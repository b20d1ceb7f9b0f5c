"""Keeping Python's cyclic garbage collector off bulk steps.

A full collection walks every tracked object of the process (a quarter of a million in a worker that has
loaded pandas, shapely and SQLAlchemy) with the GIL held, 0.1-0.15 s each time. Creating many objects at
once — shapely geometries for a batch of points, pandas frames chunk after chunk — triggers such collections
although those objects form no cycles; these context managers keep the collector's work to what matters.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def existing_objects_frozen() -> Iterator[None]:
    """For a long bulk step: move the objects that exist now out of the collector's reach (``gc.freeze``)
    until the step ends, so collections look only at what the step creates (and still free its cycles).
    Left alone if something froze objects already (a server that freezes what it loaded at start must not
    have them thawed here)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """For a short step that creates many acyclic objects (milliseconds): no collection at all until it
    ends. Process-wide, like the collector; re-enabled only if it was enabled before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
