"""Monthly evaluation (考核评价, #24): indicators from case events only, scores and grades as data
(``data/evaluation.yaml``), rankings per kind, the printable report and the public ranking view.

``indicators`` defines each indicator (numerator / denominator) and the local month; ``scores`` reads and
validates ``evaluation.yaml`` and scores, grades and ranks rows; ``store`` holds the SQL (one aggregated pass per
kind); ``queries`` is what the web layer and the CLI call; ``report`` renders the HTML report.
"""
