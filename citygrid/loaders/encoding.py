"""Text encodings of input files: the one place that decides how a file's bytes are read as text.

Chinese survey contractors and hotlines deliver files in GBK/GB18030 at least as often as UTF-8, usually
without saying so. The rule, for every importer: the encoding the user names (which must be a text
encoding), else what the file says (a Shapefile's ``.cpg``), else UTF-8 (a BOM allowed) when the bytes decode
as UTF-8, else GB18030:

- **CSV** (``csv_encoding``): GB18030 only when the whole file is plainly Chinese (every non-ASCII byte pair a
  GB2312 character, as a Chinese export without the rarer GBK characters is); anything else asks for the
  encoding. A Latin-1/cp1252 file also decodes as GB18030 wherever an accented letter precedes a letter
  ('Müller' as 'M黮ler'), so GB18030 is never read unasked beyond that shape.
- **DBF** (``shapefile_encoding``): a fixed-length record file, so each record can be decoded on its own: the
  sample decides between UTF-8 and GB18030 (a superset of GBK), and a record that does not decode is
  reported by line instead of failing the whole file.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterable, Iterator
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


def decodes(blocks: Iterable[bytes], encoding: str, *, final: bool = True) -> bool:
    """Whether ``blocks`` (consecutive bytes of one text) decode in ``encoding``; ``final=False`` for a sample
    that may end inside a character. Decoded incrementally: the text is never held whole."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        for block in blocks:
            decoder.decode(block)
        decoder.decode(b"", final=final)
    except UnicodeDecodeError:
        return False
    return True


def file_blocks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of ``path`` in blocks of ``size`` (1 MiB): a large file is never held twice in memory."""
    with path.open("rb") as fh:
        while block := fh.read(size):
            yield block


def is_text_encoding(name: str) -> bool:
    """Whether ``name`` names a text encoding (``codecs.lookup`` also knows rot13, zlib, base64 and
    undefined, which are none)."""
    try:
        "".encode(name)
    except (LookupError, UnicodeError):
        return False
    return True


def text_encoding(name: str) -> str:
    """``name`` if it names a text encoding (``is_text_encoding``), else ``InvalidInput``."""
    if not is_text_encoding(name):
        raise InvalidInput(f"unknown encoding {name[:40]!r} (e.g. utf-8, cp1252, latin-1, gb18030)",
                           field="encoding")
    return name


def csv_encoding(path: Path, given: str | None = None) -> str:
    """The encoding a CSV (or other text file) is read in: ``given`` (checked by ``text_encoding``), else
    ``utf-8-sig`` when it decodes as UTF-8, else ``gb18030`` when it is plainly Chinese (see the module
    doc); ``InvalidInput`` asking for the encoding otherwise."""
    if given is not None:
        return text_encoding(given)
    if decodes(file_blocks(path), "utf-8"):
        return "utf-8-sig"
    if decodes(file_blocks(path), "gb2312"):
        return "gb18030"
    raise InvalidInput(f"{path.name}: text is not UTF-8 (nor plainly Chinese GB18030): give its encoding, e.g. "
                       "--encoding cp1252 (Excel in western Europe and the Americas), latin-1 or gb18030",
                       field="encoding")


def detect_dbf_encoding(dbf: Path) -> str:
    """UTF-8 if the records decode as UTF-8, else GB18030 (a superset of GBK) if they decode as that."""
    _, header_len, _ = _dbf_layout(dbf)
    with dbf.open("rb") as fh:
        fh.seek(header_len)
        sample = fh.read(SAMPLE_BYTES)
    if not any(b >= 0x80 for b in sample) or decodes([sample], "utf-8", final=False):
        return "UTF-8"
    if decodes([sample], "gb18030", final=False):
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
        encoding, source = text_encoding(user), "user"
    elif (cpg := read_cpg(shp)) is not None and is_text_encoding(cpg):
        encoding, source = cpg, "cpg"
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
