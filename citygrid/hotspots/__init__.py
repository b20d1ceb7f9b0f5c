"""Hot spots (#24): Getis-Ord Gi* over unit grids, supervision grids, communities or streets for a period
(``gistar``), emerging hot spots over time bins (``emerging``), the spatial weights both use (``weights``),
what front ends call (``queries``) and the SQL (``store``).

Pure numpy/scipy where the statistics are computed; geometry in the deployment CRS; no Flask, no environment.
"""
