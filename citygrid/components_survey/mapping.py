"""How a census file's columns and values become the standard component attributes.

Standard attributes (see data/taxonomy/README.md): ObjID, ObjName, DeptCode1–3 / DeptName1–3 (owning,
managing, maintaining departments as 主管/权属/养护), BGID (unit grid), ObjState, ORDate, CHDate, DataSource,
Note, plus the class code. Common English and Chinese headers are recognised; a mapping file overrides them
and can carry what a city's file does not say in our terms:

.. code-block:: yaml

    columns: {ObjID: 编号, ObjName: species}     # attribute: the file's column
    set: {class_code: "0402"}                    # attribute: one value for every row
    values:                                      # attribute: {the file's value: ours}
      class_code: {国槐: "0402", Hydrant: "0113"}
      status: {In service: 完好}
    case_sensitive: false                        # the default: "IN SERVICE" and "in service" match too
    geometry: {wkt: the_geom}                    # CSV: points from a WKT (or ``wkb``: hex WKB) column
    id_field: asset_id                           # the city's own feature ID (as ``--id-field``)

Attributes may be named as above (``ClassCode``) or in snake case (``class_code``; ``status`` is ObjState).
A plain ``{StandardName: column}`` object is read as ``columns``. Any other key is an error that lists the
known ones. ``standard_attributes`` applies a checked mapping to a batch of rows, vectorised (Arrow compute
over whole columns, no Python loop per row). No database here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from citygrid.errors import InvalidInput
from citygrid.loaders import safeyaml
from citygrid.loaders.plaintext import control_character

STANDARD = ("ObjID", "ClassCode", "ObjName", "DeptCode1", "DeptName1", "DeptCode2", "DeptName2", "DeptCode3",
            "DeptName3", "BGID", "ObjState", "ORDate", "CHDate", "DataSource", "Note")
ALIASES: dict[str, tuple[str, ...]] = {
    "ObjID": ("objid", "obj_id", "标识码", "部件标识码", "部件编码", "部件编号", "编码", "bsm"),
    "ClassCode": ("classcode", "class_code", "smallclass", "小类代码", "部件小类代码", "类别代码", "部件类型代码",
                  "xldm"),
    "ObjName": ("objname", "obj_name", "部件名称", "名称", "小类名称"),
    "DeptCode1": ("deptcode1", "主管部门代码"),
    "DeptName1": ("deptname1", "主管部门", "主管部门名称"),
    "DeptCode2": ("deptcode2", "权属单位代码"),
    "DeptName2": ("deptname2", "权属单位", "权属单位名称"),
    "DeptCode3": ("deptcode3", "养护单位代码"),
    "DeptName3": ("deptname3", "养护单位", "养护单位名称"),
    "BGID": ("bgid", "单元网格", "单元网格编码", "网格编码", "所在网格"),
    "ObjState": ("objstate", "obj_state", "状态", "部件状态"),
    "ORDate": ("ordate", "or_date", "初始日期", "建设日期", "普查日期"),
    "CHDate": ("chdate", "ch_date", "变更日期"),
    "DataSource": ("datasource", "data_source", "数据来源"),
    "Note": ("note", "备注"),
}
# How a mapping file may name an attribute: the standard name or its snake-case form.
ATTRIBUTE_NAMES: dict[str, str] = {
    **{name: name for name in STANDARD},
    "obj_id": "ObjID", "class_code": "ClassCode", "obj_name": "ObjName",
    **{f"dept_{kind}{i}": f"Dept{kind.title()}{i}" for kind in ("code", "name") for i in (1, 2, 3)},
    "bgid": "BGID", "obj_state": "ObjState", "status": "ObjState", "or_date": "ORDate", "ch_date": "CHDate",
    "data_source": "DataSource", "note": "Note",
}
SECTIONS = ("columns", "set", "values", "case_sensitive", "geometry", "id_field")
GEOMETRY_FORMATS = ("wkt", "wkb")
MAX_VALUE = 500  # the longest text attribute stored (checks.MAX_TEXT)


@dataclass(frozen=True)
class CensusMapping:
    """A census mapping, checked.

    Attributes
    ----------
    columns : standard attribute -> the file's column.
    constants : standard attribute -> the value every row gets (``set:``).
    values : standard attribute -> {the file's value (trimmed): ours} (``values:``); values not listed stay.
    case_sensitive : whether a file's value must match a ``values:`` key exactly; by default case is ignored
        (Unicode lower case on both sides), as in case imports' mappings.
    geometry : ``("wkt" | "wkb", column)`` for a CSV whose points are in one column, else None.
    id_field : the file's column holding the city's own feature ID, or None.
    """

    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    case_sensitive: bool = False
    geometry: tuple[str, str] | None = None
    id_field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON) that ``parse_mapping`` reads back: the flat ``{attribute: column}`` form when the
        mapping only maps columns (what earlier jobs stored), else the sections that are set."""
        if not (self.constants or self.values or self.geometry or self.id_field):
            return dict(self.columns)
        out: dict[str, Any] = {"columns": dict(self.columns), "set": dict(self.constants),
                               "values": {k: dict(v) for k, v in self.values.items()}}
        if self.case_sensitive:
            out["case_sensitive"] = True
        if self.geometry:
            out["geometry"] = {self.geometry[0]: self.geometry[1]}
        if self.id_field:
            out["id_field"] = self.id_field
        return {k: v for k, v in out.items() if v}


def _known_attributes() -> str:
    return ", ".join(ATTRIBUTE_NAMES)


def _attribute(key: Any, section: str, what: str) -> str:
    name = ATTRIBUTE_NAMES.get(key) if isinstance(key, str) else None
    if name is None:
        raise InvalidInput(f"{what}: {section} names unknown attributes {key}; known: {_known_attributes()}",
                           field="mapping")
    return name


def _text(value: Any, where: str, what: str, *, max_len: int = MAX_VALUE) -> str:
    """A mapping value that must be text: YAML reads unquoted 0402 as the number 258 (octal), yes/no as
    booleans; a control character or line break in a code or column name is refused too."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: {where} is {type(value).__name__} {str(value)[:40]!r}, not text (YAML reads "
                           "unquoted 0402 as a number and yes/no/on as booleans): quote it", field="mapping")
    if len(value) > max_len:
        raise InvalidInput(f"{what}: {where} is longer than {max_len} characters", field="mapping")
    if (bad := control_character(value, single_line=True)) is not None:
        raise InvalidInput(f"{what}: {where} holds a control character ({bad})", field="mapping")
    return value


def _section(data: dict[str, Any], key: str, what: str) -> dict[Any, Any]:
    section = data.get(key)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise InvalidInput(f"{what}: '{key}:' must be a mapping of attribute: …", field="mapping")
    return section


def parse_mapping(data: Any, what: str = "mapping") -> CensusMapping:
    """Check a parsed mapping (a YAML/JSON document: the sections above, or a flat ``{attribute: column}``).

    Raises ``InvalidInput`` naming the first problem: an unknown key (with the known ones), an unknown
    attribute, a value that is not text, a column both mapped and set, ObjID set to one value."""
    if data is None or data == {}:
        return CensusMapping()
    data = _sections(data, what)
    columns = _columns(data, what)
    constants = _constants(data, columns, what)
    case_sensitive = data.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise InvalidInput(f"{what}: case_sensitive must be true or false", field="mapping")
    values = _values(data, case_sensitive, what)
    geometry = None
    if (spec := data.get("geometry")) is not None:
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in GEOMETRY_FORMATS:
            raise InvalidInput(f"{what}: geometry must be one of {{wkt: column}} or {{wkb: column}}",
                               field="mapping")
        fmt, column = next(iter(spec.items()))
        geometry = (fmt, _text(column, f"geometry.{fmt}", what))
    id_field = data.get("id_field")
    if id_field is not None:
        id_field = _text(id_field, "id_field", what)
    return CensusMapping(columns, constants, values, case_sensitive, geometry, id_field)


def _sections(data: Any, what: str) -> dict[str, Any]:
    """``data`` as sections (the flat ``{attribute: column}`` form read as ``columns``); ``InvalidInput`` for
    anything but a mapping of known sections."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{what} must be a mapping with sections {', '.join(SECTIONS)} (or a plain "
                           "StandardName: column object)", field="mapping")
    if not any(k in SECTIONS for k in data) and all(isinstance(k, str) and k in ATTRIBUTE_NAMES for k in data):
        data = {"columns": data}  # the flat form
    unknown = [str(k) for k in data if k not in SECTIONS]
    if unknown:
        raise InvalidInput(f"{what} has unknown keys {', '.join(unknown)[:200]}; known: {', '.join(SECTIONS)} "
                           f"(attributes: {_known_attributes()})", field="mapping")
    return data


def _columns(data: dict[str, Any], what: str) -> dict[str, str]:
    """The ``columns:`` section: standard attribute -> the file's column (text)."""
    columns = {_attribute(k, "columns", what): v for k, v in _section(data, "columns", what).items()}
    odd = [name for name, v in columns.items() if not isinstance(v, str)]
    if odd:
        raise InvalidInput(f"{what}: column names for {', '.join(odd)} are not text (YAML reads no/yes/on as "
                           "booleans and digits as numbers): quote them", field="mapping")
    return {name: _text(v, f"columns.{name}", what) for name, v in columns.items()}


def _constants(data: dict[str, Any], columns: dict[str, str], what: str) -> dict[str, str]:
    """The ``set:`` section: standard attribute -> one value for every row; never the ObjID (each differs),
    never an attribute ``columns`` maps too."""
    constants = {}
    for key, value in _section(data, "set", what).items():
        name = _attribute(key, "set", what)
        if name == "ObjID":
            raise InvalidInput(f"{what}: set cannot give every row one ObjID (each must differ)", field="mapping")
        if name in columns:
            raise InvalidInput(f"{what}: {key} is both mapped to column {columns[name]!r} and set to a value; "
                               "keep one", field="mapping")
        constants[name] = _text(value, f"set.{key}", what)
    return constants


def _values(data: dict[str, Any], case_sensitive: bool, what: str) -> dict[str, dict[str, str]]:
    """The ``values:`` section: standard attribute -> {the file's value (trimmed): ours}. Unless
    ``case_sensitive``, two keys that differ only in case must map to the same value."""
    values: dict[str, dict[str, str]] = {}
    for key, table in _section(data, "values", what).items():
        name = _attribute(key, "values", what)
        if not isinstance(table, dict) or not table:
            raise InvalidInput(f"{what}: values.{key} must map the file's values to ours "
                               "({\"国槐\": \"0402\", …})", field="mapping")
        values[name] = {_text(k, f"values.{key} key {k!r}", what).strip(): _text(v, f"values.{key}.{k}", what)
                        for k, v in table.items()}
    if not case_sensitive:
        for name, table in values.items():
            folded: dict[str, tuple[str, str]] = {}
            for key, ours in table.items():
                other = folded.setdefault(key.lower(), (key, ours))
                if other[1] != ours:
                    raise InvalidInput(f"{what}: values.{name} maps {other[0]!r} and {key!r}, which differ only in "
                                       "case, to different values; set case_sensitive: true to tell them apart",
                                       field="mapping")
    return values


def load_mapping_file(path: Path | None) -> dict[str, Any]:
    """Read and check a YAML mapping file (None -> empty mapping); returns ``CensusMapping.to_dict()``, the
    form ``CensusOptions.mapping`` takes."""
    if path is None:
        return {}
    if not path.exists():
        raise InvalidInput(f"mapping file not found: {path}", field="mapping")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"mapping file is not UTF-8 text: {exc}", field="mapping") from exc
    data: Any = safeyaml.load(text, what=f"mapping file {path.name}")
    if data is None:
        raise InvalidInput(f"mapping file {path.name} is empty; it takes {', '.join(SECTIONS)}", field="mapping")
    return parse_mapping(data, f"mapping file {path.name}").to_dict()


def resolve_columns(columns: list[str], mapping: CensusMapping, reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """Standard attribute -> file column, from the mapping first, else recognised headers. Attributes the
    mapping sets to one value get no column; ``reserved`` columns (the native ID, a geometry column) are never
    taken for an attribute by their header."""
    missing = [v for v in (*mapping.columns.values(), *reserved) if v not in columns]
    if missing:
        raise InvalidInput(f"mapped column(s) {', '.join(missing)} not in the file (columns: {', '.join(columns)})",
                           field="mapping")
    resolved = dict(mapping.columns)
    lower = {c.strip().lower(): c for c in columns if c not in reserved}
    for name, aliases in ALIASES.items():
        if name in resolved or name in mapping.constants:
            continue
        hit = next((lower[a] for a in aliases if a in lower), None)
        if hit is not None and hit not in resolved.values():
            resolved[name] = hit
    return resolved


# ------------------------------------------------------------------------------------------ applied to rows
STRING = pd.ArrowDtype(pa.string())


def arrow_text(values: pa.Array) -> pa.Array:
    """Any Arrow column as text: integral floats without '.0' (numeric IDs read from a DBF), other values as
    Arrow renders them, nulls kept."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_large_string(values.type) or pa.types.is_integer(values.type):
        return values.cast(pa.string())
    if pa.types.is_floating(values.type):
        numbers = values.to_numpy(zero_copy_only=False)
        integral = np.isfinite(numbers) & (np.floor(numbers) == numbers) & (np.abs(numbers) < 2**53)
        out = np.full(len(numbers), None, dtype=object)
        out[integral] = pa.array(numbers[integral].astype(np.int64)).cast(pa.string()).to_numpy(zero_copy_only=False)
        other = np.isfinite(numbers) & ~integral
        out[other] = [str(v) for v in numbers[other]]
        return pa.array(out, type=pa.string())
    try:
        return values.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in values.to_pylist()], type=pa.string())


def text_column(series: pd.Series | None, n: int) -> pd.Series:
    """A column as Arrow-backed text, trimmed, empty values missing (None: a column the file lacks)."""
    if series is None:
        return pd.Series(pa.nulls(n, pa.string()), dtype=STRING)
    values = arrow_text(pa.array(series, from_pandas=True))
    trimmed = pc.utf8_trim_whitespace(values)
    return pd.Series(pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed), dtype=STRING)


def constant_column(value: str, n: int) -> pd.Series:
    """One text value for ``n`` rows (a mapping's ``set:``), trimmed as a file's values are."""
    return text_column(pd.Series(pa.array(np.full(n, value, dtype=object), type=pa.string()), dtype=STRING), n)


def map_values(values: pd.Series, table: dict[str, str], case_sensitive: bool = False) -> pd.Series:
    """Text values (Arrow-backed, trimmed) with those ``table`` lists replaced by ours (a mapping's
    ``values:``), ignoring case unless ``case_sensitive``; the others kept. A look-up in C over the whole
    column."""
    raw = pa.array(values)
    keys = list(table) if case_sensitive else [key.lower() for key in table]
    hit = pc.index_in(raw if case_sensitive else pc.utf8_lower(raw), value_set=pa.array(keys, type=pa.string()))
    mapped = pc.coalesce(pc.take(pa.array(list(table.values()), type=pa.string()), hit), raw)
    return pd.Series(pc.if_else(pc.equal(mapped, ""), pa.scalar(None, pa.string()), mapped), dtype=STRING)


def standard_attributes(attrs: pd.DataFrame, columns: dict[str, str], mapping: CensusMapping,
                        names: tuple[str, ...] = STANDARD) -> pd.DataFrame:
    """The standard attributes ``names`` of a batch of rows as trimmed Arrow-backed text (missing where
    empty): each from its column (``columns``, from ``resolve_columns``) or the mapping's constant, then
    through the mapping's value table. Index 0 … n-1, as ``attrs``'."""
    n = len(attrs)

    def attribute(name: str) -> pd.Series:
        if name in mapping.constants:
            values = constant_column(mapping.constants[name], n)
        else:
            values = text_column(attrs.get(columns[name]) if name in columns else None, n)
        if name not in mapping.values:
            return values
        return map_values(values, mapping.values[name], mapping.case_sensitive)

    return pd.DataFrame({name: attribute(name) for name in names})
