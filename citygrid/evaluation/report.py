"""The printable monthly report: one A4 page per kind, a table of the ranking and a small inline SVG chart of
the scores, Chinese fonts, no script (it prints as it is). Rendered with Jinja2 (autoescaped: names come from
imports and accounts), from what ``queries.evaluate_all`` answers.

Each page shows at most ``ROWS_PER_PAGE`` rows (the top of the ranking) so a kind stays on its one page; the
CSV and JSON answers hold every row.
"""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import escape

from citygrid.evaluation.indicators import INDICATORS

ROWS_PER_PAGE = 25
CHART_ROWS = 10
# Static (no data in it), so a page's Content-Security-Policy can allow it by its hash.
CSS = """
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
       "Microsoft YaHei", sans-serif; font-size: 9pt; color: #111; margin: 0; }
section.page { break-after: page; page-break-after: always; }
section.page:last-of-type { break-after: auto; page-break-after: auto; }
h1 { font-size: 14pt; margin: 0 0 2mm; }
h2 { font-size: 11pt; margin: 0 0 2mm; }
p.meta { margin: 0 0 3mm; color: #444; }
p.synthetic { color: #a00; font-weight: bold; margin: 0 0 2mm; }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; }
th, td { border: 0.2mm solid #999; padding: 0.8mm 1.2mm; text-align: right; }
th:nth-child(2), td:nth-child(2) { text-align: left; }
th { background: #eee; }
p.more, p.defs { color: #444; font-size: 7.5pt; margin: 1mm 0; }
svg { display: block; width: 100%; height: auto; }
"""
_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>考核评价 {{ r.district_name }} {{ r.month }}</title>
<link rel="icon" href="data:,">
<style>{{ css|safe }}</style>
</head>
<body>
{% for kind, part in r.kinds.items() %}<section class="page" id="kind-{{ kind }}">
<h1>{{ r.district_name }}（{{ r.district }}）月度考核评价 {{ r.month }}</h1>
{% if r.synthetic %}<p class="synthetic">SYNTHETIC 合成数据 — this month counts synthetic cases;
 not a real evaluation.</p>{% endif %}
<h2>{{ part.label }}</h2>
<p class="meta">{{ r.start }} – {{ r.end }} ({{ r.zone }}) · weights
{% for n, w in part.scoring.weights.items() %}{{ n }} {{ w|round(1) }}{{ ", " if not loop.last }}{% endfor %}
· grades {% for g, low in part.scoring.grades.items() %}{{ g }} ≥ {{ low|round(0)|int }}, {% endfor %}
else {{ part.scoring.fallback_grade }} · {{ part.scoring.note }}</p>
{{ charts[kind]|safe }}
<table>
<thead><tr><th>名次</th><th>名称 name</th><th>得分</th><th>等级</th>
{% for i in indicators[kind] %}<th>{{ i.label }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in part.rows[:limit] %}<tr><td>{{ row.rank if row.rank is not none else "—" }}</td>
<td>{{ row.name }}</td><td>{{ "%.1f"|format(row.score) if row.score is not none else "—" }}</td>
<td>{{ row.grade or "—" }}</td>{% for i in indicators[kind] %}<td>{{ pct(row[i.name]) }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="{{ 4 + indicators[kind]|length }}">no activity this month 本月无数据</td></tr>
{% endfor %}</tbody>
</table>
{% if part.rows|length > limit %}<p class="more">… and {{ part.rows|length - limit }} more
 (CSV or JSON: citygrid evaluate --format csv).</p>{% endif %}
<p class="defs">{% for i in indicators[kind] %}{{ i.label }} {{ i.name }}: {{ i.definition }}
{{- " (scored as 1 − rate)" if i.better == "lower" }}. {% endfor %}</p>
</section>
{% endfor %}</body>
</html>
""")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def chart(rows: list[dict[str, Any]], top: int = CHART_ROWS) -> str:
    """A horizontal bar chart (SVG markup) of the scores of the first ``top`` ranked rows; names escaped."""
    scored = [r for r in rows if r["score"] is not None][:top]
    if not scored:
        return ""
    bar_h, label_w, width = 14, 150, 520
    height = bar_h * len(scored) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="scores of the top {len(scored)}">']
    for index, row in enumerate(scored):
        y = 2 + index * bar_h
        length = (width - label_w - 40) * max(0.0, min(100.0, row["score"])) / 100.0
        name = escape(str(row["name"])[:24])
        parts.append(f'<text x="{label_w - 4}" y="{y + 10}" font-size="9" text-anchor="end">{name}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{length:.1f}" height="{bar_h - 4}" fill="#3b6ea5"/>'
                     f'<text x="{label_w + length + 3:.1f}" y="{y + 10}" font-size="9">{row["score"]:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(report: dict[str, Any]) -> str:
    """The report's HTML for an ``evaluate_all`` answer."""
    charts = {kind: chart(part["rows"]) for kind, part in report["kinds"].items()}
    return _TEMPLATE.render(r=report, css=CSS, charts=charts, indicators=INDICATORS, limit=ROWS_PER_PAGE,
                            pct=_pct)
