"""The file readers every importer shares (``loaders.tables``, ``loaders.encoding``): plain arguments, the
one encoding rule, files that lie about their encoding or format, and batch boundaries. No database."""

from __future__ import annotations

import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from citygrid.errors import InvalidInput
from citygrid.loaders import points as points_module
from citygrid.loaders import tables
from citygrid.loaders.encoding import csv_encoding, decodes

CHINESE = "code,name,lon,lat\n110105001000,建外街道,116.45,39.91\n110105002000,朝外街道,116.44,39.92\n"


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------------------------------ the encoding rule
def test_csv_encoding_utf8_bom_chinese_and_the_rest_asked_for(tmp_path):
    assert csv_encoding(write(tmp_path, "u.csv", CHINESE)) == "utf-8-sig"
    assert csv_encoding(write(tmp_path, "bom.csv", "\ufeff" + CHINESE)) == "utf-8-sig"
    assert csv_encoding(write(tmp_path, "gbk.csv", CHINESE, "gbk")) == "gb18030"
    assert csv_encoding(write(tmp_path, "ascii.csv", "a,b\n1,2\n")) == "utf-8-sig"
    # Latin-1 'Müller' decodes as GB18030 ('M黮ler'): never guessed, the user is asked
    latin = write(tmp_path, "l.csv", "name\nMüller Straße\n", "cp1252")
    with pytest.raises(InvalidInput, match="--encoding cp1252") as err:
        csv_encoding(latin)
    assert err.value.field == "encoding"
    assert csv_encoding(latin, "cp1252") == "cp1252"
    for codec in ("klingon", "rot13", "zlib", "base64"):
        with pytest.raises(InvalidInput, match=f"unknown encoding '{codec}'"):
            csv_encoding(latin, codec)


def test_decodes_streams_and_knows_a_sample_may_end_inside_a_character():
    text = "建外".encode()
    assert decodes([text[:2], text[2:]], "utf-8")  # a character split across blocks
    assert not decodes([text[:2]], "utf-8") and decodes([text[:2]], "utf-8", final=False)
    assert not decodes([b"\xff"], "utf-8")


# ------------------------------------------------------------------------------------------ CSV tables
def test_read_csv_table_reads_text_and_names_the_encoding(tmp_path):
    table, encoding = tables.read_csv_table(write(tmp_path, "gbk.csv", CHINESE, "gbk"))
    assert encoding == "gb18030" and table["name"].tolist() == ["建外街道", "朝外街道"]
    assert table["code"].tolist()[0] == "110105001000"  # text, not a number
    table, encoding = tables.read_csv_table(write(tmp_path, "bom.csv", "\ufeff" + CHINESE))
    assert table.columns[0] == "code" and encoding == "utf-8-sig"


def test_a_file_lying_about_its_encoding_is_refused_with_the_byte(tmp_path):
    gbk = write(tmp_path, "gbk.csv", CHINESE, "gbk")
    with pytest.raises(InvalidInput, match=r"not utf-8 text \(byte \d+\): give its encoding") as err:
        tables.read_csv_table(gbk, encoding="utf-8")
    assert err.value.field == "encoding"
    with pytest.raises(InvalidInput, match="not utf-16 text"):  # a codec's own complaint: no BOM
        tables.read_csv_table(gbk, encoding="utf-16")


@pytest.mark.parametrize(("content", "match"), [
    ("a,b,a\n1,2,3\n", "column 'a' appears twice"),
    ("", "not a readable CSV"),
    ('a,b\n"1,2\n', "not a readable CSV"),
])
def test_read_csv_table_refuses_what_is_no_table(tmp_path, content, match):
    with pytest.raises(InvalidInput, match=match) as err:
        tables.read_csv_table(write(tmp_path, "x.csv", content))
    assert err.value.field == "file"


def test_read_csv_table_needs_a_file(tmp_path):
    with pytest.raises(InvalidInput, match="file not found"):
        tables.read_csv_table(tmp_path / "none.csv")
    with pytest.raises(InvalidInput, match="is not a file"):
        tables.read_csv_table(tmp_path)


# ------------------------------------------------------------------------------------------ batches
def test_csv_batches_keep_lines_and_boundaries(tmp_path):
    lines = "".join(f"{i},{100 + i},{200 + i}\n" for i in range(7))
    path = write(tmp_path, "p.csv", "id,east,north\n" + lines)
    src = tables.open_source(path, tmp_path / "work")
    batches = list(tables.read_batches(src, x_field="east", y_field="north", batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1] and src.total == 7 and src.encoding == "utf-8-sig"
    assert np.concatenate([b.lines for b in batches]).tolist() == list(range(2, 9))
    assert batches[1].attrs.index.tolist() == [0, 1, 2] and batches[1].attrs["id"].tolist() == ["3", "4", "5"]
    assert batches[2].points.x.tolist() == [106.0] and batches[2].points.y.tolist() == [206.0]
    assert all(b.crs is None for b in batches)
    # a batch as large as the file, or larger: one batch
    assert [len(b) for b in tables.read_batches(tables.open_source(path, tmp_path / "w2"), x_field="east",
                                                y_field="north", batch_size=7)] == [7]


def test_csv_with_a_wkt_column(tmp_path):
    path = write(tmp_path, "w.csv", 'id,shape\n1,POINT (1 2)\n2,POINT (1\n3,\n')
    src = tables.open_source(path, tmp_path / "work")
    (batch,) = tables.read_batches(src, geometry=("wkt", "shape"))
    assert list(batch.attrs.columns) == ["id"]
    assert batch.points.problem.tolist() == ["", "not readable WKT: 'POINT (1'", "empty geometry"]
    with pytest.raises(InvalidInput, match="geometry column 'geom' not in the file"):
        list(tables.read_batches(src, geometry=("wkt", "geom")))


def test_gdal_batches_stream_with_the_files_crs(tmp_path):
    frame = gpd.GeoDataFrame({"name": [f"p{i}" for i in range(5)]},
                             geometry=shapely.points(np.arange(5.0), np.arange(5.0) * 2), crs=4548)
    frame.to_file(tmp_path / "p.gpkg", layer="components")
    src = tables.open_source(tmp_path / "p.gpkg", tmp_path / "work", layer="components")
    assert (src.kind, src.total) == ("ogr", 5)
    batches = list(tables.read_batches(src, layer="components", batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 1] and batches[0].crs.to_epsg() == 4548
    assert np.concatenate([b.lines for b in batches]).tolist() == [2, 3, 4, 5, 6]
    assert batches[1].points.y.tolist() == [4.0, 6.0] and batches[2].attrs["name"].tolist() == ["p4"]
    with pytest.raises(InvalidInput, match="reads a CSV column"):
        list(tables.read_batches(src, geometry=("wkt", "shape")))
    # zipped: the one dataset inside is read the same way
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as zf:
        zf.write(tmp_path / "p.gpkg", "inside/p.gpkg")
    zipped = tables.open_source(tmp_path / "p.zip", tmp_path / "work2")
    assert sum(len(b) for b in tables.read_batches(zipped, batch_size=100)) == 5


def test_a_shapefile_whose_cpg_lies_reads_the_rest_and_names_the_bad_records(tmp_path):
    frame = gpd.GeoDataFrame({"name": ["a", "XXXXXX", "c"]}, geometry=shapely.points([1.0, 2, 3], [1.0, 2, 3]),
                             crs=4548)
    frame.to_file(tmp_path / "m.shp", encoding="UTF-8")
    (tmp_path / "m.cpg").write_text("UTF-8")
    dbf = tmp_path / "m.dbf"
    dbf.write_bytes(dbf.read_bytes().replace(b"XXXXXX", "测试".encode("gbk") + b"  "))
    src = tables.open_source(tmp_path / "m.shp", tmp_path / "work")
    assert (src.encoding, src.encoding_source, src.bad_encoding_lines) == ("UTF-8", "cpg", {3})
    (batch,) = tables.read_batches(src)
    assert batch.attrs["name"].tolist()[0] == "a" and len(batch) == 3
    assert str(src.path).startswith(str(tmp_path / "work"))  # the blanked copy; the user's file is untouched


def test_a_file_whose_content_is_not_what_its_name_says_is_refused(tmp_path):
    path = write(tmp_path, "x.gpkg", CHINESE)
    with pytest.raises(InvalidInput) as err:
        tables.open_source(path, tmp_path / "work")
    assert err.value.field == "file"
    with pytest.raises(InvalidInput, match="file not found"):
        tables.open_source(tmp_path / "none.gpkg", tmp_path / "work")


# ------------------------------------------------------------------------------------------ pacing
def _batch(start: int, n: int) -> tables.Batch:
    values = np.arange(start, start + n, dtype=float)
    return tables.Batch(pd.DataFrame({"i": np.arange(start, start + n)}),
                        points_module.Points(values, -values, np.full(n, "", dtype=object)),
                        np.arange(start + 2, start + n + 2), None)


def test_paced_cuts_the_first_and_the_last_batch_and_keeps_every_row_in_order():
    sizes = [10, 10, 10]
    pieces = list(tables.paced(iter([_batch(sum(sizes[:k]), n) for k, n in enumerate(sizes)])))
    assert [len(b) for b in pieces] == [2, 3, 2, 3, 10, 2, 3, 2, 3]
    rows = np.concatenate([b.attrs["i"].to_numpy() for b in pieces])
    xs = np.concatenate([b.points.x for b in pieces])
    lines = np.concatenate([b.lines for b in pieces])
    assert np.array_equal(rows, np.arange(30)) and np.array_equal(xs, rows) and all(
        b.attrs.index[0] == 0 for b in pieces)
    assert np.array_equal(lines, rows + 2)
    # one batch is cut once; one smaller than the pieces gives no empty ones; no batch, no pieces
    assert [len(b) for b in tables.paced(iter([_batch(0, 8)]))] == [2, 2, 2, 2]
    assert [len(b) for b in tables.paced(iter([_batch(0, 2), _batch(2, 1)]))] == [1, 1, 1]
    assert list(tables.paced(iter([]))) == []


def test_the_first_batch_is_cut_before_the_next_is_read():
    read = []

    def batches():
        for k in range(3):
            read.append(k)
            yield _batch(10 * k, 10)

    paced = tables.paced(batches())
    next(paced)
    assert read == [0]
