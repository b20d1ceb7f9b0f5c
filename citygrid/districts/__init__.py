"""Import a city's own administrative data: district boundary, street and community areas, linear features.

Each importer takes a ``VectorFile`` (read by ``citygrid.loaders.vector``) and a connection inside the caller's
transaction, validates everything first and writes only when the whole input is acceptable (a list of row
problems, ``citygrid.errors.RowProblem``, is raised as ``InvalidInput.details`` otherwise). Geometry is
reprojected to the deployment's storage CRS (``deployment.srid``); the district must belong in that CRS
(``crs.check_extent_fits``).

This package stands above ``loaders`` and ``codes`` (it reads their files and checks their code formats); the
district boundary that other packages need is read through ``citygrid.spatial.boundaries``, below them all.

Modules: ``boundary`` (``import_district``), ``areas`` (``import_areas``), ``lines`` (``import_lines``),
``common`` (the column and geometry helpers they share).
"""

from __future__ import annotations

from citygrid.districts.areas import import_areas
from citygrid.districts.boundary import import_district
from citygrid.districts.lines import import_lines

__all__ = ["import_areas", "import_district", "import_lines"]
