"""Interop (#25): the server as a source for GIS staff's tools — the collections (``collections``), their reads
(``queries``, what the ``/ogc`` API, the exports and the QGIS project call) and their SQL (``store``)."""
