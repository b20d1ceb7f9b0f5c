"""A grid's owners found through a B-tree index (#21).

The owners of a unit grid at an instant (``cases.store.owners_at``, the dispatch preview of every row of the
dispatch queue, the case page, the grid card) were found through the GiST index of the exclusion constraint
that keeps one owner per grid, role and instant: about 9 buffers and 35-50 µs a grid, a third of the dispatch
queue's statement on the desk_queue bench once its cases had owners. A grid has a handful of ownership rows
(one per role and period), so a B-tree on the grid that carries the role, the validity and the party answers
from the index alone: 3 buffers and 5 µs a grid.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX grid_ownership_grid ON grid_ownership (district_code, grid_kind, grid_code) "
               "INCLUDE (role, valid, party_id)")


def downgrade() -> None:
    op.execute("DROP INDEX grid_ownership_grid")
