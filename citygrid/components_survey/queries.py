"""Reads of the class schemes, components and census import jobs, for every front end.

Each of these is already the right read in ``components_survey.store``; they are named here so that the API,
Open311, the pages and the CLI call the package's domain functions rather than its SQL module. Positions come
back as lon/lat in EPSG:4326.

- ``taxonomy(conn, scheme=None, kind=None)``: classes ordered by scheme, kind and code.
- ``open311_services(conn, scheme, service_code=None)`` and ``has_own_service_codes(conn, scheme)``: what a
  scheme offers through Open311, and whether its classes carry their own service codes.
- ``component_history(conn, obj_id)``: every version of a component, newest first, with its case count.
- ``job(conn, job_id)`` and ``report_rows(conn, job_id)``: an import job's record (a running job whose
  heartbeat stopped reads as failed) and its row report.
"""

from __future__ import annotations

from citygrid.components_survey.store import (
    component_history,
    has_own_service_codes,
    job,
    open311_services,
    report_rows,
    taxonomy,
)

__all__ = ["component_history", "has_own_service_codes", "job", "open311_services", "report_rows", "taxonomy"]
