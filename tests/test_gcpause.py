"""The garbage-collector pauses around bulk steps restore the collector as they found it."""

from __future__ import annotations

import gc

import pytest

from citygrid.gcpause import collection_paused, existing_objects_frozen


def test_collection_paused_restores_the_collector_as_it_was():
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()


def test_existing_objects_frozen_thaws_only_what_it_froze():
    assert gc.get_freeze_count() == 0
    with existing_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), existing_objects_frozen():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        with existing_objects_frozen():
            pass
        assert gc.get_freeze_count() > 0  # frozen by someone else first: left frozen
    finally:
        gc.unfreeze()
