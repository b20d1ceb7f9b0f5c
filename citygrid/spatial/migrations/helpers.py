"""Helpers shared by migration revisions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def deployment_srid() -> int:
    """Storage SRID: given to the first migration by ``db.upgrade``, read from ``deployment`` afterwards."""
    srid = op.get_context().config.attributes.get("srid")
    bind = op.get_bind()
    has_table = bind.execute(sa.text("SELECT to_regclass('deployment') IS NOT NULL")).scalar()
    if has_table:
        stored = bind.execute(sa.text("SELECT srid FROM deployment")).scalar()
        if stored is not None:
            return int(stored)
    if srid is None:
        raise RuntimeError("no SRID: initialise the database with `citygrid db init --srid EPSG`")
    return int(srid)


def geometry_column_ddl(table: str, column: str, geom_type: str, srid: int, *, nullable: bool = True) -> list[str]:
    """DDL for a typed geometry column with a validity check and a GiST index.

    ``table``, ``column`` and ``geom_type`` are literals written in migration files, never user input;
    ``srid`` is an int.
    """
    not_null = "" if nullable else " NOT NULL"
    return [
        f"ALTER TABLE {table} ADD COLUMN {column} geometry({geom_type}, {int(srid)}){not_null}",
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_{column}_valid CHECK ({column} IS NULL OR ST_IsValid({column}))",
        f"CREATE INDEX {table}_{column}_gist ON {table} USING gist ({column})",
    ]
