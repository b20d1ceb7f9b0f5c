"""Safe unpacking of uploaded archives: no path traversal, no links, no zip bombs, bounded size.

No database here. Every refusal is an ``InvalidInput`` naming what was wrong.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from citygrid.errors import InvalidInput

MAX_ENTRIES = 2000
MAX_TOTAL_BYTES = 4 * 2**30  # unpacked
MAX_RATIO = 200  # unpacked / packed, per entry: above this an entry is treated as a bomb
VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".csv", ".gml", ".kml", ".fgb", ".gdb")


def safe_extract(archive: Path, dest: Path, *, max_total_bytes: int = MAX_TOTAL_BYTES,
                 max_entries: int = MAX_ENTRIES, max_ratio: float = MAX_RATIO) -> list[Path]:
    """Extract ``archive`` into ``dest`` after checking every entry; returns the extracted files.

    Refused: not a zip, absolute or ``..`` paths, symbolic links, more than ``max_entries`` entries, more than
    ``max_total_bytes`` unpacked in total, an entry compressed more than ``max_ratio`` times, or an entry
    that unpacks to more than it declared.
    """
    if not zipfile.is_zipfile(archive):
        raise InvalidInput(f"{archive.name} is not a zip archive", field="file")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    out: list[Path] = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise InvalidInput(f"archive has {len(infos)} entries (at most {max_entries})", field="file")
        total = sum(i.file_size for i in infos)
        if total > max_total_bytes:
            raise InvalidInput(f"archive unpacks to {total} bytes (at most {max_total_bytes})", field="file")
        for info in infos:
            name = PurePosixPath(info.filename)
            outside = name.is_absolute() or ".." in name.parts or info.filename.startswith(("/", "\\"))
            if outside or ":" in name.parts[0]:
                raise InvalidInput(f"archive entry {info.filename!r} points outside the archive", field="file")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidInput(f"archive entry {info.filename!r} is a symbolic link", field="file")
            if info.is_dir():
                continue
            if info.compress_size and info.file_size / info.compress_size > max_ratio and info.file_size > 1_000_000:
                raise InvalidInput(f"archive entry {info.filename!r} expands {info.file_size // info.compress_size}×: "
                                   "refused as a possible zip bomb", field="file")
            target = (root / Path(*name.parts)).resolve()
            if root not in target.parents:
                raise InvalidInput(f"archive entry {info.filename!r} points outside the archive", field="file")
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, target.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > info.file_size:
                        raise InvalidInput(f"archive entry {info.filename!r} is larger than it declares", field="file")
                    dst.write(chunk)
            out.append(target)
    return out


def find_dataset(files: list[Path]) -> Path:
    """The one vector dataset among extracted files (a .shp with its sidecars, a .gpkg, …)."""
    candidates = [f for f in files if f.suffix.lower() in VECTOR_SUFFIXES and not f.name.startswith(".")]
    shapefiles = [f for f in candidates if f.suffix.lower() == ".shp"]
    chosen = shapefiles or candidates
    if not chosen:
        raise InvalidInput("the archive holds no vector file (.shp, .gpkg, .geojson, .csv …)", field="file")
    if len(chosen) > 1:
        names = ", ".join(sorted(f.name for f in chosen)[:10])
        raise InvalidInput(f"the archive holds several datasets ({names}); upload one", field="file")
    return chosen[0]
