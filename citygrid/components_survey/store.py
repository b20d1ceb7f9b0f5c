"""SQL of the components_survey package (taxonomy for now; the census joins it)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.components_survey.taxonomy import TaxonomyClass


def scheme_exists(conn: Connection, scheme: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM taxonomy_schemes WHERE scheme = :s"), {"s": scheme}).first() is not None


def replace_scheme(conn: Connection, scheme: str, title: str, source: str, classes: list[TaxonomyClass]) -> None:
    """Insert or refresh a scheme and all its classes (one transaction: the caller's)."""
    conn.execute(
        sa.text(
            "INSERT INTO taxonomy_schemes (scheme, title, source) VALUES (:s, :t, :src) "
            "ON CONFLICT (scheme) DO UPDATE SET title = EXCLUDED.title, source = EXCLUDED.source, loaded_at = now()"
        ),
        {"s": scheme, "t": title, "src": source},
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO taxonomy_classes (scheme, kind, code, major_code, major_name, name, sources, verified)
            VALUES (:scheme, :kind, :code, :major_code, :major_name, :name, :sources, :verified)
            ON CONFLICT (scheme, kind, code) DO UPDATE
               SET major_code = EXCLUDED.major_code, major_name = EXCLUDED.major_name, name = EXCLUDED.name,
                   sources = EXCLUDED.sources, verified = EXCLUDED.verified
            """
        ),
        [{"scheme": scheme, **asdict(c)} for c in classes],
    )


def taxonomy(conn: Connection, scheme: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Classes ordered by scheme, kind, code; filters optional."""
    rows = conn.execute(
        sa.text(
            """
            SELECT c.scheme, s.title AS scheme_title, c.kind, c.code, c.major_code, c.major_name, c.name,
                   c.verified
              FROM taxonomy_classes c JOIN taxonomy_schemes s USING (scheme)
             WHERE (CAST(:scheme AS text) IS NULL OR c.scheme = :scheme)
               AND (CAST(:kind AS text) IS NULL OR c.kind = :kind)
             ORDER BY c.scheme, c.kind, c.code
            """
        ),
        {"scheme": scheme, "kind": kind},
    ).mappings()
    return [dict(r) for r in rows]
