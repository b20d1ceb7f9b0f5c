"""Responsibility endpoints (#22): ownership imports and a grid's owners per role, frontage units, people,
rotation plans. Validation and formatting only; the work is the ``citygrid.responsibility`` functions'."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("responsibility_v1", __name__, url_prefix="/api/v1")

# --- ownership ---
