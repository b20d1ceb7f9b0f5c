"""Reads of responsibility for every front end (the web layer and the CLI), with plain filter objects."""

from __future__ import annotations

# --- ownership ---
