"""Safe unpacking of uploaded archives: no path traversal, no links, no zip bombs, bounded size.

No database here. Every refusal is an ``InvalidInput`` naming what was wrong.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from citygrid.errors import InvalidInput

MAX_ENTRIES = 2000
MAX_TOTAL_BYTES = 4 * 2**30  # unpacked
MAX_RATIO = 200  # unpacked / packed, per entry and over the whole archive: above this it is treated as a bomb
RATIO_FLOOR_BYTES = 10_000_000  # an archive that unpacks to less than this is never called a bomb
VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".csv", ".gml", ".kml", ".fgb", ".gdb")


def safe_extract(archive: Path, dest: Path, *, max_total_bytes: int = MAX_TOTAL_BYTES,
                 max_entries: int = MAX_ENTRIES, max_ratio: float = MAX_RATIO) -> list[Path]:
    """Extract ``archive`` into ``dest`` after checking every entry; returns the extracted files.

    Refused: not a zip, a corrupt one (bad CRC, truncated), absolute or ``..`` paths, symbolic links, more
    than ``max_entries`` entries, more than ``max_total_bytes`` unpacked in total, an entry or the whole
    archive compressed more than ``max_ratio`` times, or an entry that unpacks to more than it declared.
    """
    if not zipfile.is_zipfile(archive):
        raise InvalidInput(f"{archive.name} is not a zip archive", field="file")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            return _extract_all(zf, archive, dest.resolve(), max_total_bytes, max_entries, max_ratio)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise InvalidInput(f"{archive.name} is a corrupt or unsupported zip archive: {exc}", field="file") from exc


def check_archive(archive: Path) -> None:
    """Check a zip before accepting it (an upload): its directory as ``safe_extract`` does, then every
    entry's CRC by reading it through once, nothing written. ``InvalidInput`` with the reason."""
    if not zipfile.is_zipfile(archive):
        raise InvalidInput(f"{archive.name} is not a zip archive", field="file")
    try:
        with zipfile.ZipFile(archive) as zf:
            _check_sizes(zf.infolist(), archive.stat().st_size, MAX_TOTAL_BYTES, MAX_ENTRIES, MAX_RATIO)
            for info in zf.infolist():
                _check_entry(info, MAX_RATIO)
            bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise InvalidInput(f"{archive.name} is a corrupt or unsupported zip archive: {exc}", field="file") from exc
    if bad is not None:
        raise InvalidInput(f"{archive.name} is a corrupt zip archive: entry {bad!r} fails its CRC check",
                           field="file")


def _check_sizes(infos: list[zipfile.ZipInfo], packed: int, max_total_bytes: int, max_entries: int,
                 max_ratio: float) -> None:
    """Refuse an archive by what its directory declares, before anything is unpacked: too many entries, too
    large in all, or expanding more than ``max_ratio`` times in all (500 entries of 1 MB that each compress
    well are as much a bomb as one entry of 500 MB)."""
    if len(infos) > max_entries:
        raise InvalidInput(f"archive has {len(infos)} entries (at most {max_entries})", field="file")
    total = sum(i.file_size for i in infos)
    if total > max_total_bytes:
        raise InvalidInput(f"archive unpacks to {total} bytes (at most {max_total_bytes})", field="file")
    if total > RATIO_FLOOR_BYTES and total / max(packed, 1) > max_ratio:
        raise InvalidInput(f"archive expands {total // max(packed, 1)}× in all ({total:,} bytes from "
                           f"{packed:,}): refused as a possible zip bomb", field="file")


def _check_entry(info: zipfile.ZipInfo, max_ratio: float) -> PurePosixPath:
    """An entry's path inside the archive, or ``InvalidInput``: absolute or ``..`` paths, a drive, a symbolic
    link, or an entry over 1 MB compressed more than ``max_ratio`` times."""
    name = PurePosixPath(info.filename)
    outside = name.is_absolute() or ".." in name.parts or info.filename.startswith(("/", "\\"))
    if outside or not name.parts or ":" in name.parts[0]:
        raise InvalidInput(f"archive entry {info.filename!r} points outside the archive", field="file")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InvalidInput(f"archive entry {info.filename!r} is a symbolic link", field="file")
    if info.compress_size and info.file_size / info.compress_size > max_ratio and info.file_size > 1_000_000:
        raise InvalidInput(f"archive entry {info.filename!r} expands {info.file_size // info.compress_size}×: "
                           "refused as a possible zip bomb", field="file")
    return name


def _extract_all(zf: zipfile.ZipFile, archive: Path, root: Path, max_total_bytes: int, max_entries: int,
                 max_ratio: float) -> list[Path]:
    out: list[Path] = []
    infos = zf.infolist()
    _check_sizes(infos, archive.stat().st_size, max_total_bytes, max_entries, max_ratio)
    for info in infos:
        name = _check_entry(info, max_ratio)
        if info.is_dir():
            continue
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
