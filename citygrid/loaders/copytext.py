"""Rows for PostgreSQL's ``COPY ... FROM STDIN`` in its text format, built from Arrow columns.

The text format, not CSV: the server parses it faster (measured with psql's ``\\copy`` on the same census
rows; figures in README, Benchmarks), and in a census import the server's parsing is the slower half of
the pipeline. Written by Arrow's CSV writer with tabs, no quoting and ``\\N`` for nulls (as fast as its CSV;
joining the fields with Arrow's string kernels took several times as long). That writer
refuses values holding a tab, a line end or a double quote, so columns holding any of the characters the
text format or the writer cares about are escaped first: backslash, tab, newline and carriage return as the
text format's escapes, byte 0x01 as the octal escape ``\\001``, and the double quote (plain text to COPY) as
byte 0x01, put back once the chunk is written.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

NULL = "\\N"
QUOTE_STAND_IN = "\x01"
# Backslash first, so the escapes added after it are not escaped again; 0x01 before it stands in for quotes.
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), (QUOTE_STAND_IN, "\\001"),
            ('"', QUOTE_STAND_IN))
_SPECIAL = tuple(plain.encode() for plain, _ in _ESCAPES)
_OPTIONS = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none", null_string=NULL)


def needs_escape(values: pa.Array) -> bool:
    """Whether any value of a text column holds a character ``escape`` changes: a memchr pass over its bytes
    per character (an order of magnitude faster than one pass through a numpy look-up table)."""
    data = values.buffers()[2]
    if data is None:
        return False
    raw = data.to_pybytes()
    return any(raw.find(special) >= 0 for special in _SPECIAL)


def escape(values: pa.Array) -> pa.Array:
    """Text values escaped for the text format, with 0x01 standing in for double quotes (see module doc)."""
    for plain, escaped in _ESCAPES:
        values = pc.replace_substring(values, plain, escaped)
    return values


def copy_text(columns: list[pa.Array], safe: frozenset[int] = frozenset()) -> bytes:
    """One line per row, fields separated by tabs, nulls as ``\\N``, in column order. Every column is text
    (``pa.string()``) and as long as the others; ``safe`` holds the positions of columns known to hold only
    plain characters (codes, dates, hex), which are not scanned."""
    if not columns or len(columns[0]) == 0:
        return b""
    fields, stood_in = [], False
    for i, column in enumerate(columns):
        if column.type != pa.string():
            column = column.cast(pa.string())
        if i not in safe and needs_escape(column):
            column, stood_in = escape(column), True
        fields.append(column)
    buffer = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_arrays(fields, names=[f"c{i}" for i in range(len(fields))]), buffer, _OPTIONS)
    out = buffer.getvalue().to_pybytes()
    return out.replace(QUOTE_STAND_IN.encode(), b'"') if stood_in else out
