"""Text classification: the taxonomy classifier, training mechanics, HTTP and CLI, bad input.
(No accuracy is asserted on invented text; ``make bench ONLY=classify_eval`` measures real messages.)"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from citygrid.cases.classify import Classifier, classifier_for, train
from citygrid.cli import cli
from citygrid.components_survey import store as survey_store
from citygrid.errors import InvalidInput


@pytest.fixture
def taxonomy_classifier(bj):
    return Classifier.from_taxonomy(survey_store.taxonomy(bj))


@pytest.mark.parametrize(("text", "kind", "code"), [
    ("小区门口垃圾堆了好几天没人清理", "event", "0102"),
    ("路灯晚上不亮", "component", "0118"),
    ("电线杆上贴满了小广告", "event", "0201"),
    ("楼下露天烧烤油烟太大", "event", "0510"),
])
def test_taxonomy_classifier_top_one(taxonomy_classifier, text, kind, code):
    top = taxonomy_classifier.top(text)
    assert len(top) == 3 and (top[0].kind, top[0].code) == (kind, code)
    assert 1 >= top[0].probability >= top[1].probability >= top[2].probability > 0


@pytest.mark.parametrize(("text", "needle"), [("", "empty"), ("   ", "empty"), ("字" * 5001, "longer")])
def test_bad_text(taxonomy_classifier, text, needle):
    with pytest.raises(InvalidInput, match=needle):
        taxonomy_classifier.top(text)


def test_training_round_trip(tmp_path):
    texts = [f"垃圾 第{i}次" for i in range(15)] + [f"路灯 第{i}次" for i in range(15)]
    labels = ["event/0102"] * 15 + ["component/0118"] * 15
    info = train(texts, labels, {"event/0102": "暴露垃圾", "component/0118": "路灯"}, tmp_path / "m.joblib")
    assert info["classes"] == 2
    model = classifier_for([], tmp_path / "m.joblib")
    assert model.trained and model.top("垃圾", k=1)[0].name == "暴露垃圾"
    with pytest.raises(InvalidInput, match="at least 20"):
        train(texts[:5], labels[:5], {}, tmp_path / "x.joblib")


def test_classify_endpoint(client):
    response = client.post("/api/v1/classify", json={"text": "井盖丢了", "kind": "component"})
    body = response.get_json()
    assert response.status_code == 200 and body["trained"] is False and len(body["top"]) == 3
    assert body["top"][0]["name"].endswith("井盖")
    assert client.post("/api/v1/classify", json={"text": ""}).status_code == 400
    assert client.post("/api/v1/classify", json={"text": "x", "kind": "thing"}).status_code == 400
    assert client.post("/api/v1/classify", data="text", content_type="text/plain").status_code == 400


def test_classify_cli(beijing_db):
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "cases", "classify", "路灯不亮了",
                                      "--kind", "component"])
    assert result.exit_code == 0 and "路灯" in result.output
    empty = CliRunner().invoke(cli, ["--database", beijing_db.database, "cases", "classify", " "])
    assert empty.exit_code == 2
