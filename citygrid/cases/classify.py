"""Classify free text (citizen messages, hotline notes) into the classes of a scheme — or say it cannot.

Two stages, one interface:
- **taxonomy** (no labelled cases yet): each class is described by its name, its group (major class), its
  keywords and description (and, for the packaged ``cjt214`` scheme, a few everyday aliases); the text's terms
  (``terms``) are weighted by TF-IDF and compared (cosine) with those descriptions, and the similarities turned
  into probabilities with a softmax.
- **trained**: once labelled (non-synthetic) cases exist, ``train`` fits a scikit-learn pipeline — TF-IDF of
  character 1–3-grams and of jieba words, logistic regression — and ``Classifier.load`` uses it.

**Unclassifiable texts.** A classifier always has a most probable class, even for a text in a language its
scheme does not speak (that used to give an unrelated class with p = 0.01). ``Classifier.classify`` instead
returns no class, with the reason, when
1. the text holds no term the scheme (or the training texts) knows — "no known vocabulary in the text";
2. (taxonomy stage) its best cosine similarity to any class is below ``MIN_SIMILARITY`` (0.2) — "out of
   scheme";
3. its best probability is below ``MIN_PROBABILITY`` (0.05) — "low confidence".
Intake then stores the report without a class, flagged for review (``cases.service``).

Terms (``terms``): scripts written without spaces (Chinese, Japanese, Korean) give character 1–3-grams, which
need no word segmentation and match 井盖 inside 井盖破损; other scripts give their words (case-folded, English
stop words and one-letter words dropped) plus, for words over five letters, their first five letters (so
"potholes" meets "pothole" without a language's stemmer). Whitespace and punctuation are never terms.

No accuracy is ever measured on synthetic text (``make bench ONLY=classify_eval`` uses real messages).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from citygrid.components_survey.taxonomy import DEFAULT_SCHEME
from citygrid.errors import InvalidInput
from citygrid.loaders.plaintext import control_character

MAX_TEXT = 5000
MIN_SIMILARITY = 0.2
MIN_PROBABILITY = 0.05

# A few everyday words people use for a class of the packaged scheme, beyond its standard name (keys: kind/code).
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

_UNSPACED = ("\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
             "\U00020000-\U0002fa1f")
_SEGMENT = re.compile(f"[{_UNSPACED}]+|[^\\W{_UNSPACED}_]+")
_IS_UNSPACED = re.compile(f"[{_UNSPACED}]")
STEM = 5


@functools.cache
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def terms(text: str) -> list[str]:
    """The terms of ``text`` that the classifier compares (see the module's docstring).

    Examples
    --------
    >>> terms("井盖丢了")[:4]
    ['井', '盖', '丢', '了']
    >>> terms("Potholes on the road!")
    ['potholes', 'potho~', 'road']
    """
    stop = _stop_words()
    out: list[str] = []
    for segment in _SEGMENT.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _IS_UNSPACED.match(segment):
            for n in (1, 2, 3):
                out.extend(segment[i:i + n] for i in range(len(segment) - n + 1))
        elif len(segment) > 1 and not segment.isdigit() and segment not in stop:
            out.append(segment)
            if len(segment) > STEM:
                out.append(segment[:STEM] + "~")
    return out


@dataclass(frozen=True)
class Prediction:
    kind: str
    code: str
    name: str
    probability: float


@dataclass(frozen=True)
class Verdict:
    """What the classifier makes of one text.

    Attributes
    ----------
    best : the class, or None when the text cannot be classified.
    top : the most probable classes (empty when the text shares no vocabulary with the scheme, or when it is
        unclassifiable: candidates below the thresholds are unrelated classes, not hints).
    reason : why there is no class (None when there is one).
    known_terms : how many distinct terms of the text the scheme (or the training texts) knows.
    similarity : best cosine similarity to a class description (taxonomy stage; None for a trained model).
    """

    best: Prediction | None
    top: list[Prediction]
    reason: str | None
    known_terms: int
    similarity: float | None

    @property
    def classified(self) -> bool:
        return self.best is not None

    def as_dict(self) -> dict[str, Any]:
        return {"classified": self.classified, "class": asdict(self.best) if self.best else None,
                "reason": self.reason, "known_terms": self.known_terms,
                "similarity": None if self.similarity is None else round(self.similarity, 4),
                "top": [asdict(p) for p in self.top]}


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


def class_document(c: dict[str, Any]) -> str:
    """The text that describes a class to the taxonomy stage: its name (twice), group, keywords, description and
    (packaged scheme only) aliases."""
    aliases = ALIASES.get(f"{c['kind']}/{c['code']}", "") if c.get("scheme", DEFAULT_SCHEME) == DEFAULT_SCHEME else ""
    return " ".join([c["name"], c["name"], c.get("major_name") or "", c.get("keywords") or "",
                     c.get("description") or "", aliases])


class Classifier:
    """Top-k classes for a text, or why it has none. Build with ``from_taxonomy`` or ``load`` (a trained model)."""

    def __init__(self, labels: list[tuple[str, str, str]], scorer: Callable[[list[str]], np.ndarray],
                 trained: bool, vocabulary: frozenset[str],
                 similarity: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self.labels = labels  # (kind, code, name)
        self._scorer = scorer
        self._similarity = similarity
        self.vocabulary = vocabulary
        self.trained = trained

    @classmethod
    def from_taxonomy(cls, classes: Sequence[dict[str, Any]], temperature: float = 0.08) -> Classifier:
        """Similarity to class descriptions. ``classes``: rows with scheme, kind, code, name, major_name and
        optionally keywords and description (``components_survey.store.taxonomy``)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not classes:
            raise InvalidInput("no classes to classify into; load a taxonomy first", field="scheme")
        labels = [(c["kind"], c["code"], c["name"]) for c in classes]
        docs = [class_document(c) for c in classes]
        vectorizer = TfidfVectorizer(analyzer=terms, sublinear_tf=True).fit(docs)
        matrix = vectorizer.transform(docs)

        def similarity(texts: list[str]) -> np.ndarray:
            return (vectorizer.transform(texts) @ matrix.T).toarray()

        def score(texts: list[str]) -> np.ndarray:
            logits = similarity(texts) / temperature
            logits -= logits.max(axis=1, keepdims=True)
            weights = np.exp(logits)
            return weights / weights.sum(axis=1, keepdims=True)

        return cls(labels, score, trained=False, vocabulary=frozenset(vectorizer.vocabulary_), similarity=similarity)

    @classmethod
    def load(cls, path: Path, classes: Sequence[dict[str, Any]] = ()) -> Classifier:
        """A model saved by ``train``. Its vocabulary is that of its training texts (older models: of
        ``classes``' descriptions)."""
        import joblib

        bundle = joblib.load(path)
        model = bundle["model"]  # its classes_ are "kind/code" strings
        labels = [(c.split("/")[0], c.split("/")[1], bundle["names"].get(c, "")) for c in model.classes_]
        vocabulary = set(bundle.get("vocabulary") or ())
        for c in classes:
            vocabulary.update(terms(class_document(c)))
        return cls(labels, model.predict_proba, trained=True, vocabulary=frozenset(vocabulary))

    @staticmethod
    def _checked(text: str) -> str:
        text = (text or "").strip()
        if not text:
            raise InvalidInput("text to classify is empty", field="text")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"text to classify is longer than {MAX_TEXT} characters ({len(text):,})", field="text")
        if (what := control_character(text)) is not None:
            raise InvalidInput(f"text to classify contains a control character ({what}); send plain text",
                               field="text")
        return text

    def top(self, text: str, k: int = 3) -> list[Prediction]:
        """The ``k`` most probable classes, whatever they are worth (``classify`` decides whether to trust them)."""
        probs = self._scorer([self._checked(text)])[0]
        best = np.argsort(-probs, kind="stable")[:k]
        return [Prediction(*self.labels[i], probability=round(float(probs[i]), 4)) for i in best]

    def classify(self, text: str, k: int = 3) -> Verdict:
        """The class of ``text``, or none with the reason (see the module's docstring for the rules).

        Raises
        ------
        InvalidInput : the text is empty, longer than ``MAX_TEXT`` characters or holds a control character.
        """
        text = self._checked(text)
        known = len(set(terms(text)) & self.vocabulary)
        if known == 0:
            return Verdict(None, [], "no known vocabulary in the text: it shares no word with the scheme's class "
                                     "names and keywords (another language, or a subject the scheme does not "
                                     "cover)", 0, 0.0 if self._similarity else None)
        similarity = float(self._similarity([text])[0].max()) if self._similarity else None
        if similarity is not None and similarity < MIN_SIMILARITY:
            return Verdict(None, [], f"out of scheme: too little vocabulary in common with any class (best "
                                     f"similarity {similarity:.2f} < {MIN_SIMILARITY})", known, similarity)
        top = self.top(text, k)
        if top[0].probability < MIN_PROBABILITY:
            return Verdict(None, [], f"low confidence: the most probable class, {top[0].kind}/{top[0].code} "
                                     f"{top[0].name}, has p = {top[0].probability} < {MIN_PROBABILITY}",
                           known, similarity)
        return Verdict(top[0], top, None, known, similarity)


_CACHE: dict[tuple, Classifier] = {}


def classifier_for(classes: Sequence[dict[str, Any]], model_path: Path | None) -> Classifier:
    """The trained model at ``model_path`` if there is one, else the taxonomy classifier of ``classes`` (both
    cached)."""
    described = tuple((c.get("scheme"), c["kind"], c["code"], c["name"], c.get("major_name"), c.get("keywords"),
                       c.get("description")) for c in classes)
    if model_path is not None and model_path.exists():
        key: tuple = ("model", str(model_path), model_path.stat().st_mtime, described)
        if key not in _CACHE:
            _CACHE[key] = Classifier.load(model_path, classes)
        return _CACHE[key]
    key = ("taxonomy", described)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Classifier.from_taxonomy(classes)
    return _CACHE[key]


def train(texts: Sequence[str], labels: Sequence[str], names: dict[str, str], path: Path) -> dict[str, Any]:
    """Fit the trained pipeline on labelled texts (labels ``kind/code``) and save it to ``path``, with the
    vocabulary (``terms``) of the texts and class names, by which ``classify`` tells unknown texts."""
    import joblib

    if len(texts) < 20 or len(set(labels)) < 2:
        raise InvalidInput("training needs at least 20 labelled cases in 2 or more classes", field="cases")
    model = training_pipeline().fit(list(texts), list(labels))
    vocabulary = {t for text in [*texts, *names.values()] for t in terms(text)}
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"model": model, "labels": sorted(set(labels)), "names": names, "vocabulary": sorted(vocabulary)},
                path)
    return {"path": str(path), "cases": len(texts), "classes": len(set(labels))}
