"""The responsibility package's SQL (bound parameters only), one block per part of #22."""

from __future__ import annotations

# --- ownership ---
