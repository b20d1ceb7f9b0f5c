"""Classify free text (citizen messages, hotline notes) into component/event classes: top three with
probabilities.

Two stages, one interface:
- **taxonomy** (no labelled cases yet): each class is described by its name, its major class and a few
  aliases; a character 1–3-gram TF-IDF of the text is compared (cosine) with those descriptions and the
  similarities turned into probabilities with a softmax. Character n-grams need no word segmentation and
  match 井盖 inside 井盖破损.
- **trained**: once labelled (non-synthetic) cases exist, ``train`` fits a scikit-learn pipeline — TF-IDF of
  character 1–3-grams and of jieba words, logistic regression — and ``Classifier.load`` uses it.

No accuracy is ever measured on synthetic text (``make bench ONLY=classify_eval`` uses real messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from citygrid.errors import InvalidInput

# A few everyday words people use for a class, beyond its standard name (keys: kind/code).
ALIASES: dict[str, str] = {
    "event/0101": "违建 违章建筑 私搭 搭建 加盖",
    "event/0102": "垃圾 垃圾堆 乱扔垃圾 垃圾没人清理 脏乱",
    "event/0103": "渣土 建筑垃圾 堆积",
    "event/0104": "路面脏 道路脏 不干净",
    "event/0110": "路面破损 坑 坑洼 路坏了",
    "event/0201": "小广告 牛皮癣 乱贴 涂写",
    "event/0501": "无照经营 游商 小贩 摆摊 卖水果 流动摊贩",
    "event/0504": "店外经营 占道经营 摆到门外",
    "event/0505": "乱停车 停车 违停 车停在",
    "event/0506": "自行车 电动车 共享单车 乱放",
    "event/0508": "噪音 吵 扰民 音响",
    "event/0510": "烧烤 油烟 露天",
    "component/0101": "井盖 井盖坏 井盖丢失 下水道盖",
    "component/0118": "路灯 灯不亮 灯坏了 晚上黑",
    "component/0305": "垃圾桶 垃圾箱 满溢",
    "component/0301": "公厕 厕所",
    "component/0402": "树 树木 倒伏 树枝",
}


@dataclass(frozen=True)
class Prediction:
    kind: str
    code: str
    name: str
    probability: float


def _char_vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1)


def jieba_words(text: str) -> list[str]:
    import jieba

    jieba.setLogLevel(60)
    return [w for w in jieba.lcut(text) if w.strip()]


def training_pipeline(class_weight: str | None = "balanced"):
    """Our trained pipeline: character 1–3-grams + jieba words, TF-IDF, logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion([
        ("chars", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)),
        ("words", TfidfVectorizer(tokenizer=jieba_words, token_pattern=None, lowercase=False, sublinear_tf=True)),
    ])
    return make_pipeline(features, LogisticRegression(max_iter=2000, C=10.0, class_weight=class_weight))


class Classifier:
    """Top-k classes for a text. Build with ``from_taxonomy`` or ``load`` (a trained model)."""

    def __init__(self, labels: list[tuple[str, str, str]], scorer: Any, trained: bool) -> None:
        self.labels = labels  # (kind, code, name)
        self._scorer = scorer
        self.trained = trained

    @classmethod
    def from_taxonomy(cls, classes: Sequence[dict[str, Any]], temperature: float = 0.08) -> Classifier:
        """Similarity to class descriptions. ``classes``: rows with kind, code, name, major_name."""
        if not classes:
            raise InvalidInput("no classes to classify into; load a taxonomy first", field="scheme")
        labels = [(c["kind"], c["code"], c["name"]) for c in classes]
        docs = [f"{c['name']} {c['name']} {c['major_name']} {ALIASES.get(c['kind'] + '/' + c['code'], '')}"
                for c in classes]
        vectorizer = _char_vectorizer().fit(docs)
        matrix = vectorizer.transform(docs)

        def score(texts: list[str]) -> np.ndarray:
            sims = (vectorizer.transform(texts) @ matrix.T).toarray()
            logits = sims / temperature
            logits -= logits.max(axis=1, keepdims=True)
            weights = np.exp(logits)
            return weights / weights.sum(axis=1, keepdims=True)

        return cls(labels, score, trained=False)

    @classmethod
    def load(cls, path: Path) -> Classifier:
        import joblib

        bundle = joblib.load(path)
        model = bundle["model"]  # its classes_ are "kind/code" strings
        labels = [(c.split("/")[0], c.split("/")[1], bundle["names"].get(c, "")) for c in model.classes_]
        return cls(labels, model.predict_proba, trained=True)

    def top(self, text: str, k: int = 3) -> list[Prediction]:
        text = (text or "").strip()
        if not text:
            raise InvalidInput("text to classify is empty", field="text")
        if len(text) > 5000:
            raise InvalidInput("text to classify is longer than 5000 characters", field="text")
        probs = self._scorer([text])[0]
        best = np.argsort(-probs, kind="stable")[:k]
        return [Prediction(*self.labels[i], probability=round(float(probs[i]), 4)) for i in best]


_CACHE: dict[tuple, Classifier] = {}


def classifier_for(classes: Sequence[dict[str, Any]], model_path: Path | None) -> Classifier:
    """The trained model at ``model_path`` if there is one, else the taxonomy classifier (both cached)."""
    if model_path is not None and model_path.exists():
        key: tuple = ("model", str(model_path), model_path.stat().st_mtime)
        if key not in _CACHE:
            _CACHE[key] = Classifier.load(model_path)
        return _CACHE[key]
    key = ("taxonomy", tuple((c["kind"], c["code"], c["name"]) for c in classes))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Classifier.from_taxonomy(classes)
    return _CACHE[key]


def train(texts: Sequence[str], labels: Sequence[str], names: dict[str, str], path: Path) -> dict[str, Any]:
    """Fit the trained pipeline on labelled texts (labels ``kind/code``) and save it to ``path``."""
    import joblib

    if len(texts) < 20 or len(set(labels)) < 2:
        raise InvalidInput("training needs at least 20 labelled cases in 2 or more classes", field="cases")
    model = training_pipeline().fit(list(texts), list(labels))
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"model": model, "labels": sorted(set(labels)), "names": names}, path)
    return {"path": str(path), "cases": len(texts), "classes": len(set(labels))}
