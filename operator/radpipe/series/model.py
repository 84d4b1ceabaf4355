"""The series classifier: a CatBoost model (native .cbm) over header features.

The model file is loaded once per process (``lru_cache``) and all series of a study are
predicted in one call. The model is found in ``models/series-classifier/`` under the
configured models directory, else next to the source tree (the bundled model).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radpipe.series.features import CAT_INDICES, FEATURE_NAMES, TEXT_INDICES, study_features
from radpipe.series.headers import SeriesHeader

if TYPE_CHECKING:
    from radpipe.config import Settings

MODEL_NAME = "series-classifier"
MODEL_FILE = "model.cbm"


class ModelNotFound(FileNotFoundError):
    """The series-classifier model file is missing; the message says where it was looked for."""


@dataclass(frozen=True)
class Prediction:
    """The classifier's answer for one series."""

    label: str
    probability: float
    probabilities: dict[str, float] = field(default_factory=dict)

    def alternatives(self, limit: int = 3, floor: float = 0.01) -> list[tuple[str, float]]:
        """The next most likely classes after ``label`` (at least ``floor`` probability)."""
        ranked = sorted(self.probabilities.items(), key=lambda kv: -kv[1])
        return [(c, p) for c, p in ranked if c != self.label and p >= floor][:limit]


def bundled_model_dir() -> Path:
    """``models/series-classifier`` of the source tree this package lives in."""
    return Path(__file__).resolve().parents[3] / "models" / MODEL_NAME


def model_path(settings: Settings | None = None) -> Path:
    """The .cbm in force: ``settings.models.dir/series-classifier/model.cbm``, else bundled."""
    if settings is not None and settings.models.dir is not None:
        configured = settings.models.dir / MODEL_NAME / MODEL_FILE
        if configured.is_file():
            return configured
    return bundled_model_dir() / MODEL_FILE


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Any:
    from catboost import CatBoostClassifier

    model = CatBoostClassifier()
    model.load_model(path)
    return model


class SeriesClassifier:
    """Predicts the series class of every series of a study from their headers."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ModelNotFound(
                f"series-classifier model not found at {path}; train it with "
                f"`python models/{MODEL_NAME}/train.py` or set models.dir in the config"
            )
        self.path = path
        self._model = _load(str(path))
        self.classes: tuple[str, ...] = tuple(str(c) for c in self._model.classes_)

    @classmethod
    def load(cls, settings: Settings | None = None) -> SeriesClassifier:
        """The classifier named by the configuration (or the bundled one)."""
        return cls(model_path(settings))

    @property
    def version(self) -> str:
        """A short identifier of the model file (for provenance)."""
        import hashlib

        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]

    def predict_rows(self, rows: Sequence[Sequence[Any]]) -> list[Prediction]:
        """Predict feature rows (as made by :mod:`radpipe.series.features`) in one call."""
        if not rows:
            return []
        from catboost import Pool

        pool = Pool(
            [list(r) for r in rows],
            cat_features=CAT_INDICES,
            text_features=TEXT_INDICES,
            feature_names=list(FEATURE_NAMES),
        )
        matrix = self._model.predict_proba(pool)
        predictions = []
        for probs in matrix:
            by_class = {c: float(p) for c, p in zip(self.classes, probs, strict=True)}
            label = max(by_class, key=lambda c: by_class[c])
            predictions.append(Prediction(label, by_class[label], by_class))
        return predictions

    def predict_study(self, headers: Sequence[SeriesHeader]) -> list[Prediction]:
        """Predict every series of one study (one model call)."""
        return self.predict_rows(study_features(headers))
