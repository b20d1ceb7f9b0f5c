"""citygrid: a PostGIS-backed GIS server for gridded urban management (数字化城市管理)."""

__version__ = "0.1.0"
