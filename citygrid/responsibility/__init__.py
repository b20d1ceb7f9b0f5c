"""Responsibility (#22): who answers for each small area, as seed 000 defines it.

- ``ownership`` — the four subjects (责任主体, 管理主体, 执法主体, 监督主体) per unit grid over time, and the
  derived defaults a city gets before it loads its own lists;
- ``ownership_import`` — a city's own lists (CSV grid → party, or GIS responsibility areas) as dated assignments;
- frontage units (门前三包), named people (实名制) and supervisor rotation: their own modules.

SQL lives in ``store.py``; the web layer and the CLI read through ``queries.py``.
"""
