"""Which column of a census file holds which standard component attribute.

Standard attributes (see data/taxonomy/README.md): ObjID, ObjName, DeptCode1–3 / DeptName1–3 (owning,
managing, maintaining departments as 主管/权属/养护), BGID (unit grid), ObjState, ORDate, CHDate, DataSource,
Note, plus the class code. Common English and Chinese headers are recognised; a mapping file overrides them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from citygrid.errors import InvalidInput
from citygrid.loaders import safeyaml

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


def load_mapping_file(path: Path | None) -> dict[str, str]:
    """Read ``columns: {StandardName: column}`` from a YAML mapping file (None -> empty mapping)."""
    if path is None:
        return {}
    if not path.exists():
        raise InvalidInput(f"mapping file not found: {path}", field="mapping")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"mapping file is not UTF-8 text: {exc}", field="mapping") from exc
    data: Any = safeyaml.load(text, what=f"mapping file {path.name}")
    columns = data.get("columns") if isinstance(data, dict) else None
    if not isinstance(columns, dict):
        raise InvalidInput("mapping file needs a 'columns:' section of StandardName: column", field="mapping")
    unknown = [k for k in columns if k not in STANDARD]
    if unknown:
        raise InvalidInput(f"mapping names unknown attributes {', '.join(map(str, unknown))}; "
                           f"known: {', '.join(STANDARD)}", field="mapping")
    odd = [str(k) for k, v in columns.items() if not isinstance(v, str)]
    if odd:
        raise InvalidInput(f"column names for {', '.join(odd)} are not text (YAML reads no/yes/on as booleans "
                           "and digits as numbers): quote them", field="mapping")
    return {str(k): str(v) for k, v in columns.items()}


def resolve_columns(columns: list[str], user: dict[str, str]) -> dict[str, str]:
    """Standard attribute -> file column, from the user's mapping first, else recognised headers."""
    missing = [v for v in user.values() if v not in columns]
    if missing:
        raise InvalidInput(f"mapped column(s) {', '.join(missing)} not in the file (columns: {', '.join(columns)})",
                           field="mapping")
    resolved = dict(user)
    lower = {c.strip().lower(): c for c in columns}
    for name, aliases in ALIASES.items():
        if name in resolved:
            continue
        hit = next((lower[a] for a in aliases if a in lower), None)
        if hit is not None and hit not in resolved.values():
            resolved[name] = hit
    return resolved
