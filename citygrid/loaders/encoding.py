"""Attribute encodings of Shapefiles: the ``.cpg`` if there is one, else detected from the DBF bytes.

Chinese survey contractors deliver DBFs in GBK/GB18030 at least as often as UTF-8, usually without a ``.cpg``.
The DBF is a fixed-length record file, so each record can be decoded on its own: a record that does not
decode is reported by line instead of failing the whole file.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field
from pathlib import Path

from citygrid.errors import InvalidInput

CPG_ALIASES = {"utf8": "UTF-8", "utf-8": "UTF-8", "65001": "UTF-8", "gbk": "GBK", "936": "GBK", "cp936": "GBK",
               "gb2312": "GBK", "gb18030": "GB18030", "54936": "GB18030", "ansi 936": "GBK", "big5": "BIG5",
               "950": "BIG5", "iso-8859-1": "ISO-8859-1", "latin1": "ISO-8859-1", "1252": "CP1252"}
SAMPLE_BYTES = 8 * 2**20


@dataclass
class EncodingReport:
    """Chosen encoding, where it came from (``cpg``, ``detected``, ``user``), and 1-based data line numbers
    (the header being line 1, as in a CSV) of DBF records that do not decode in it."""

    encoding: str
    source: str
    bad_lines: list[int] = field(default_factory=list)


def read_cpg(shp: Path) -> str | None:
    cpg = shp.with_suffix(".cpg")
    if not cpg.exists():
        cpg = shp.with_suffix(".CPG")
    if not cpg.exists():
        return None
    text = cpg.read_text(errors="replace").strip().lower()
    return CPG_ALIASES.get(text, text.upper() or None)


def _dbf_layout(dbf: Path) -> tuple[int, int, int]:
    with dbf.open("rb") as fh:
        header = fh.read(32)
    if len(header) < 32:
        raise InvalidInput(f"{dbf.name} is truncated (no DBF header)", field="file")
    n_records, header_len, record_len = struct.unpack("<IHH", header[4:12])
    return n_records, header_len, record_len


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=False)
        return True
    except UnicodeDecodeError:
        return False


def detect_dbf_encoding(dbf: Path) -> str:
    """UTF-8 if the records decode as UTF-8, else GB18030 (a superset of GBK) if they decode as that."""
    _, header_len, _ = _dbf_layout(dbf)
    with dbf.open("rb") as fh:
        fh.seek(header_len)
        sample = fh.read(SAMPLE_BYTES)
    if not any(b >= 0x80 for b in sample) or _decodes(sample, "utf-8"):
        return "UTF-8"
    if _decodes(sample, "gb18030"):
        return "GB18030"
    return "UTF-8"  # neither fits everywhere: decode per record and report the bad ones


def bad_records(dbf: Path, encoding: str) -> list[int]:
    """Line numbers (header = line 1) of DBF records that do not decode in ``encoding``."""
    n_records, header_len, record_len = _dbf_layout(dbf)
    bad: list[int] = []
    codec = codecs.lookup(encoding).name
    with dbf.open("rb") as fh:
        fh.seek(header_len)
        for index in range(n_records):
            record = fh.read(record_len)
            if len(record) < record_len:
                break
            try:
                record.decode(codec)
            except UnicodeDecodeError:
                bad.append(index + 2)
    return bad


def shapefile_encoding(shp: Path, user: str | None = None) -> EncodingReport:
    """Encoding of a Shapefile's attributes: ``user`` > ``.cpg`` > detected; with the records that fail it."""
    dbf = shp.with_suffix(".dbf")
    if not dbf.exists():
        dbf = shp.with_suffix(".DBF")
    if not dbf.exists():
        raise InvalidInput(f"{shp.name} has no .dbf beside it (upload the .shp, .shx, .dbf and .prj together)",
                           field="file")
    if user:
        try:
            codecs.lookup(user)
        except LookupError:
            raise InvalidInput(f"unknown encoding {user!r}", field="encoding") from None
        encoding, source = user, "user"
    elif (cpg := read_cpg(shp)) is not None:
        encoding, source = cpg, "cpg"
        try:
            codecs.lookup(encoding)
        except LookupError:
            encoding, source = detect_dbf_encoding(dbf), "detected"
    else:
        encoding, source = detect_dbf_encoding(dbf), "detected"
    return EncodingReport(encoding=encoding, source=source, bad_lines=bad_records(dbf, encoding))


def blank_records(shp: Path, bad_lines: list[int], workdir: Path) -> Path:
    """A copy of the Shapefile whose undecodable DBF records are blanked (spaces), so GDAL can read the rest.

    The blanked rows are still read (with empty attributes) and are reported by the caller as bad encoding.
    Returns the path of the copied ``.shp``.
    """
    import shutil

    workdir.mkdir(parents=True, exist_ok=True)
    for sidecar in shp.parent.glob(shp.stem + ".*"):
        shutil.copy(sidecar, workdir / sidecar.name)
    dbf = workdir / (shp.stem + (".dbf" if (workdir / (shp.stem + ".dbf")).exists() else ".DBF"))
    _, header_len, record_len = _dbf_layout(dbf)
    with dbf.open("r+b") as fh:
        for line in bad_lines:
            fh.seek(header_len + (line - 2) * record_len + 1)  # keep the deletion flag byte
            fh.write(b" " * (record_len - 1))
    return workdir / shp.name
