"""Settings in one place: where the data lives and which database to use.

Nothing here touches the database or the file system at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE = "citygrid"
DEFAULT_PG_PORT = 55432
PG_SUPERUSER = "citygrid"
# OS account that runs the embedded PostgreSQL server when citygrid is invoked as root
# (initdb and postgres refuse to run as root).
PG_OS_USER = "citygrid-pg"
DEFAULT_UPLOAD_GRACE_S = 60.0
DEFAULT_UPLOAD_MIN_BYTES_PER_S = 64 * 1024.0
DEFAULT_MAX_OPEN_DRAFTS = 5  # open grid drafts per district (#23: each copies every unit grid)


def project_root() -> Path:
    """The checkout this package lives in (editable install), else the current directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def default_data_dir() -> Path:
    """``$CITYGRID_DATA_DIR`` or ``<project>/data``."""
    env = os.environ.get("CITYGRID_DATA_DIR")
    return Path(env).resolve() if env else project_root() / "data"


def _positive(text: str | None, default: float) -> float:
    """``text`` as a positive number, else ``default`` (unset, empty, not a number, zero or negative)."""
    try:
        value = float(text or "")
    except ValueError:
        return default
    return value if value > 0 else default


def _count(text: str | None, default: int) -> int:
    """``text`` as a whole number of at least 1, else ``default`` (unset, empty, not a whole number such as
    "0.5" or "inf", zero or negative)."""
    try:
        value = int((text or "").strip())
    except ValueError:
        return default
    return value if value >= 1 else default


NO_PROXY = "none"  # CITYGRID_TRUSTED_PROXY=none: no proxy in front; never an address a peer can have


@dataclass(frozen=True)
class Settings:
    """What a command or the web app needs to find its database.

    Attributes
    ----------
    database : name of the database (one per city deployment); None means the URL's database with
        ``DATABASE_URL``, else ``citygrid`` in the embedded cluster.
    database_url : ``postgresql://…`` of an existing PostGIS server; when set the embedded cluster is unused
        and ``database``, when given, replaces the URL's database name.
    data_dir : directory holding the demo data and the embedded cluster (``pg/``, ``run/``, ``log/``).
    pg_port : port of the embedded cluster (names its Unix socket; TCP only when asked).
    trusted_proxy : address of the reverse proxy in front of the server, whose ``X-Forwarded-For`` and
        ``X-Forwarded-Proto`` are believed (``webmap.ratelimit.client_address``, ``webmap.headers``); None: not
        said (``serve --prod`` then warns that a proxy may be hiding clients); ``NO_PROXY`` (``none``): clients
        connect directly, nothing forwarded is believed and nothing is warned (``make demo`` on this machine).
    open311_keys : the Open311 API keys and their limits, ``key:per_minute`` pairs separated by commas (parsed
        by ``webmap.ratelimit.parse_keys`` when the app is built).
    upload_grace_s, upload_min_bytes_per_s : a body that ``serve --prod``'s threads read (an upload) must keep
        up this rate after this grace period (``webmap.slowclients.ReadDeadline``).
    basemap_url, basemap_attribution : the map pages' optional XYZ basemap (``basemap``); empty: none.
    photos_root : the directory of the cases' photo files (``CITYGRID_PHOTOS_DIR``); None: ``photos_dir``'s
        default, ``<data_dir>/photos``.
    max_open_drafts : how many grid drafts a district may have open at once (``CITYGRID_MAX_OPEN_DRAFTS``;
        each copies every unit grid of its base); a new one beyond it is refused until one is published or
        dropped.
    """

    database: str | None = None
    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    pg_port: int = DEFAULT_PG_PORT
    trusted_proxy: str | None = None
    open311_keys: str = ""
    upload_grace_s: float = DEFAULT_UPLOAD_GRACE_S
    upload_min_bytes_per_s: float = DEFAULT_UPLOAD_MIN_BYTES_PER_S
    basemap_url: str = ""
    basemap_attribution: str = ""
    photos_root: Path | None = None
    max_open_drafts: int = DEFAULT_MAX_OPEN_DRAFTS

    @classmethod
    def from_env(cls, database: str | None = None) -> Settings:
        """Build settings from the environment: ``DATABASE_URL``, ``CITYGRID_DATABASE``, ``CITYGRID_DATA_DIR``,
        ``CITYGRID_PG_PORT``, ``CITYGRID_TRUSTED_PROXY``, ``CITYGRID_OPEN311_KEYS``, ``CITYGRID_UPLOAD_GRACE_S``,
        ``CITYGRID_UPLOAD_MIN_BYTES_PER_S``, ``CITYGRID_BASEMAP_URL``, ``CITYGRID_BASEMAP_ATTRIBUTION``,
        ``CITYGRID_PHOTOS_DIR``, ``CITYGRID_MAX_OPEN_DRAFTS`` (the one place that reads them; the app and the
        CLI are passed the result)."""
        photos = os.environ.get("CITYGRID_PHOTOS_DIR", "").strip()
        port = int(os.environ.get("CITYGRID_PG_PORT", DEFAULT_PG_PORT))
        return cls(
            database=database or os.environ.get("CITYGRID_DATABASE") or None,
            database_url=os.environ.get("DATABASE_URL") or None,
            data_dir=default_data_dir(),
            pg_port=port,
            trusted_proxy=os.environ.get("CITYGRID_TRUSTED_PROXY") or None,
            open311_keys=os.environ.get("CITYGRID_OPEN311_KEYS", ""),
            upload_grace_s=_positive(os.environ.get("CITYGRID_UPLOAD_GRACE_S"), DEFAULT_UPLOAD_GRACE_S),
            upload_min_bytes_per_s=_positive(os.environ.get("CITYGRID_UPLOAD_MIN_BYTES_PER_S"),
                                             DEFAULT_UPLOAD_MIN_BYTES_PER_S),
            basemap_url=os.environ.get("CITYGRID_BASEMAP_URL", "").strip(),
            basemap_attribution=os.environ.get("CITYGRID_BASEMAP_ATTRIBUTION", "").strip(),
            photos_root=Path(photos).resolve() if photos else None,
            max_open_drafts=_count(os.environ.get("CITYGRID_MAX_OPEN_DRAFTS"), DEFAULT_MAX_OPEN_DRAFTS),
        )

    @property
    def basemap(self) -> dict[str, str] | None:
        """The map pages' XYZ basemap (``basemap``), or None."""
        return basemap(self.basemap_url, self.basemap_attribution)

    @property
    def photos_dir(self) -> Path:
        """Where the cases' photos are stored by content hash (``citygrid.evidence.storage``): ``photos_root``, else
        ``<data_dir>/photos``."""
        return self.photos_root or self.data_dir / "photos"

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    @property
    def taxonomy_dir(self) -> Path:
        return self.data_dir / "taxonomy"


def basemap(url: str, attribution: str = "") -> dict[str, str] | None:
    """The optional XYZ basemap of the map pages: ``url`` (``$CITYGRID_BASEMAP_URL``, a ``{z}/{x}/{y}`` template,
    e.g. a tile server of the city's own) with ``attribution`` (``$CITYGRID_BASEMAP_ATTRIBUTION``); None (no
    basemap) when ``url`` is empty. See ``docs/basemap.md``: Chinese web basemaps are drawn in GCJ-02 and sit
    100–700 m off WGS84 data. ``ValueError`` for a template that is not one."""
    url = url.strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://", "/")) or "{z}" not in url or "{x}" not in url or "{y}" not in url:
        raise ValueError("CITYGRID_BASEMAP_URL must be an http(s) or site-relative URL with {z}, {x} and {y}")
    return {"url": url, "attribution": attribution.strip()}
