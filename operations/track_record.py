"""The live track record: what the service published, scored against what then happened.

Only the publication ledger counts (GET /publications): for each day, the first
publication of that day under one ledger policy, read from the row's own body; later
publications of the same day are listed as corrections and never scored. So anyone
can recompute every figure here from GET /publications and the stored prices.

- Probabilities: each published ``model.p_distressed`` is scored once its horizon has
  passed, against the outcome its model card names (``target`` and ``horizon``,
  training.targets) on labels from the card's own labeler (its centroids, on the
  stored features of the realised days). Per model version: Brier score, reliability
  bins and ROC AUC, and the Brier score rolling over the last ROLLING_DAYS outcomes.
- Exposures: each published exposure for day t is held over the next session of the
  market's traded symbol (close t to the next close; lag 1, as backtest.engine holds
  positions), without costs or cash yield, against buy & hold of the same sessions.

Everything below the I/O function ``track_record`` is pure computation on frames.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sqlalchemy import Connection

from app.settings import Settings
from backtest.metrics import yearly_returns
from core.errors import DeepRegimeError
from inference.card import ModelCard
from inference.registry import read_card
from operations import rule_sets
from operations.asks import resolve_ask
from operations.markets import Market
from store.ledger import Publication, list_publications
from store.model_registry import registered_version
from store.repository import load_closes, load_features
from training.config import RELIABILITY_BINS, Target
from training.targets import target_series

ROLLING_DAYS = 63  # about a quarter of sessions: the window of the rolling Brier score
LEDGER_PAGE = 10_000


# --- which ledger stream -----------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """One market's published answers under one ledger policy."""

    market: Market
    ledger_policy: str  # the ``policy`` of its rows in GET /publications


def resolve_stream(
    connection: Connection,
    settings: Settings,
    *,
    market: str | None,
    policy: str | None,
    rule_set: str | None,
) -> Stream:
    """The ledger stream the query names, resolved as every route resolves it
    (operations.asks); DataValidationError naming the bad parameter."""
    ask = resolve_ask(
        settings,
        market=market,
        rule_set=rule_set,
        policy=policy,
        mapping=None,
        find=lambda name: rule_sets.find(connection, name),
    )
    return Stream(ask.market, ask.ledger_key)


# --- I/O ---------------------------------------------------------------------------


def ledger_stream(connection: Connection, ledger_policy: str) -> list[Publication]:
    """Every publication under ``ledger_policy``, in ledger order."""
    rows: list[Publication] = []
    while True:
        page = list_publications(
            connection,
            policy=ledger_policy,
            after_id=rows[-1].id if rows else None,
            limit=LEDGER_PAGE,
        )
        rows += page
        if len(page) < LEDGER_PAGE:
            return rows


def model_card(connection: Connection, version: str, models_dir: Path) -> ModelCard | None:
    """The card of ``version``: as registered in the database, else from the model folder;
    None when neither has it (its outcomes are then reported unknown, with the reason)."""
    try:
        row = registered_version(connection, version=version)
        if row is not None:
            return ModelCard.model_validate(row["card"])
        return read_card(models_dir, version)
    except (DeepRegimeError, ValidationError, OSError):
        return None


def track_record(connection: Connection, stream: Stream, *, models_dir: Path) -> dict[str, Any]:
    """The track record of ``stream`` from the ledger and the stored prices and features."""
    firsts, corrections = split_first_publications(ledger_stream(connection, stream.ledger_policy))
    features = load_features(connection)
    closes = load_closes(connection, symbols=[stream.market.symbol]).get(
        stream.market.symbol, pd.Series(dtype=float, index=pd.DatetimeIndex([]))
    )
    cards = {
        version: model_card(connection, version, models_dir)
        for version in firsts["model_version"].dropna().unique()
    }
    return {
        "market": stream.market.id,
        "symbol": stream.market.symbol,
        "ledger_policy": stream.ledger_policy,
        "published_days": len(firsts),
        "prices_until": None if closes.empty else closes.index[-1].date().isoformat(),
        "probabilities": probability_record(firsts, features, cards),
        "exposures": exposure_record(firsts, closes),
        "corrections": corrections,
    }


# --- pure computation --------------------------------------------------------------


def published_fields(publication: Publication) -> dict[str, Any]:
    """What the track record reads from a ledger row's own body."""
    body = json.loads(publication.body)
    model = body.get("model") or {}
    return {
        "day": pd.Timestamp(publication.day),
        "publication_id": publication.id,
        "published_at": publication.published_at.isoformat(),
        "exposure": _number(body.get("exposure")),
        "model_version": model.get("version") if model.get("available") else None,
        "p_distressed": _number(model.get("p_distressed")) if model.get("available") else None,
        "target": model.get("target"),
        "horizon": model.get("horizon"),
    }


def split_first_publications(
    publications: list[Publication],
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The first publication of each day (a frame indexed by day, in day order) and the
    later ones of the same days (corrections, as published, with the id they follow)."""
    first: dict[pd.Timestamp, dict[str, Any]] = {}
    corrections = []
    for publication in publications:
        fields = published_fields(publication)
        if fields["day"] in first:
            corrections.append(
                _json_row(fields) | {"corrects": first[fields["day"]]["publication_id"]}
            )
        else:
            first[fields["day"]] = fields
    columns = [
        "publication_id",
        "published_at",
        "exposure",
        "model_version",
        "p_distressed",
        "target",
        "horizon",
    ]
    frame = pd.DataFrame(
        [{k: v for k, v in row.items() if k != "day"} for row in first.values()],
        index=pd.DatetimeIndex(list(first), name="date"),
        columns=columns,
    ).sort_index()
    return frame, corrections


def card_labels(card: ModelCard, features: pd.DataFrame) -> pd.Series | None:
    """The regime label (1 distressed, 0 calm, NaN unknown) per day by the card's KMeans
    labeler: the nearest centroid in its feature space, standardised (when the card says
    so) by the mean and population std of the label features over its fit period, as
    training.labels fits them. None for jump-model labels (the card holds no jump model)."""
    summary = card.labels
    if summary.method != "kmeans":
        return None
    values = features.loc[:, summary.features].to_numpy(dtype=np.float64)
    if summary.standardise:
        fit = features.loc[
            pd.Timestamp(summary.fit_period.start) : pd.Timestamp(summary.fit_period.end),
            summary.features,
        ].dropna()
        mean = fit.to_numpy().mean(axis=0)
        scale = fit.to_numpy().std(axis=0)
        scale[scale == 0.0] = 1.0
    else:
        mean, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
    centroids = np.asarray(summary.centroids, dtype=np.float64)
    distances = ((((values - mean) / scale)[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    labels = np.isin(distances.argmin(axis=1), summary.distressed_clusters).astype(float)
    labels[np.isnan(values).any(axis=1)] = np.nan
    return pd.Series(labels, index=features.index, name="label")


def roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Probability that a distressed day gets a higher p than a calm one (ties count
    half): the Mann-Whitney form of the ROC AUC. None without both outcomes."""
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = pd.Series(p).rank(method="average").to_numpy()
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def reliability_bins(y: np.ndarray, p: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """One row per non-empty equal-width bin of p (the last bin includes 1)."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [
        {
            "lower": b / bins,
            "upper": (b + 1) / bins,
            "mean_p": float(p[which == b].mean()),
            "observed": float(y[which == b].mean()),
            "days": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def probability_scores(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Brier score, expected calibration error, ROC AUC and reliability bins."""
    if len(y) == 0:
        return {"brier": None, "ece": None, "roc_auc": None, "reliability": []}
    table = reliability_bins(y, p)
    ece = sum(row["days"] * abs(row["mean_p"] - row["observed"]) for row in table) / len(y)
    return {
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(ece),
        "roc_auc": roc_auc(y, p),
        "reliability": table,
    }


def probability_record(
    firsts: pd.DataFrame, features: pd.DataFrame, cards: dict[str, ModelCard | None]
) -> list[dict[str, Any]]:
    """Per model version: its published probabilities scored against their outcomes."""
    out = []
    published = firsts.dropna(subset=["p_distressed", "model_version"])
    for version, rows in published.groupby("model_version", sort=False):
        card = cards.get(version)
        labels = None if card is None else card_labels(card, features)
        entry: dict[str, Any] = {
            "model_version": version,
            "target": rows["target"].iloc[0],
            "horizon": _integer(rows["horizon"].iloc[0]),
            "published": len(rows),
        }
        if card is None or labels is None:
            reason = (
                f"model card of {version} not found"
                if card is None
                else f"{card.labels.method} labels cannot be recomputed from the model card"
            )
            out.append(entry | {"resolved": 0, "pending": len(rows), "reason": reason})
            continue
        outcomes = target_series(labels, Target(card.target), card.horizon).reindex(rows.index)
        known = outcomes.notna().to_numpy()
        y, p = outcomes.to_numpy()[known], rows["p_distressed"].to_numpy(dtype=float)[known]
        squared = pd.Series((p - y) ** 2, index=rows.index[known])
        rolling = squared.rolling(ROLLING_DAYS, min_periods=1).mean()
        out.append(
            entry
            | {"resolved": int(known.sum()), "pending": int((~known).sum()), "reason": None}
            | probability_scores(y, p)
            | {
                "rolling_brier": [
                    {"day": day.date().isoformat(), "brier": float(value)}
                    for day, value in rolling.items()
                ],
                "days": [
                    {"day": day.date().isoformat(), "p_distressed": float(pi), "outcome": int(yi)}
                    for day, pi, yi in zip(rows.index[known], p, y, strict=True)
                ],
            }
        )
    return out


def exposure_record(firsts: pd.DataFrame, closes: pd.Series) -> dict[str, Any]:
    """Each published exposure held over the next session, against buy & hold."""
    exposures = firsts["exposure"].dropna()
    sessions = closes.index
    position = sessions.searchsorted(exposures.index)
    # A published day must be a session of the symbol, with a next session already closed.
    held = np.zeros(len(exposures), dtype=bool)
    if len(sessions):
        on_session = sessions[np.minimum(position, len(sessions) - 1)] == exposures.index
        held = on_session & (position < len(sessions) - 1)
    entry, exit_ = position[held], position[held] + 1
    asset = closes.to_numpy()[exit_] / closes.to_numpy()[entry] - 1.0
    earned_on = sessions[exit_]
    strategy = pd.Series(exposures.to_numpy()[held] * asset, index=earned_on)
    buy_and_hold = pd.Series(asset, index=earned_on)
    by_year = pd.DataFrame(
        {"return": yearly_returns(strategy), "buy_and_hold": yearly_returns(buy_and_hold)}
    )
    return {
        "sessions": int(held.sum()),
        "pending": int(len(exposures) - held.sum()),
        "cumulative_return": float(np.prod(1.0 + strategy.to_numpy()) - 1.0),
        "buy_and_hold_cumulative_return": float(np.prod(1.0 + asset) - 1.0),
        "years": [
            {
                "year": int(year),
                "return": float(row["return"]),
                "buy_and_hold": float(row["buy_and_hold"]),
            }
            for year, row in by_year.iterrows()
        ],
        "days": [
            {
                "day": day.date().isoformat(),
                "exposure": float(exposure),
                "session": session.date().isoformat(),
                "asset_return": float(r),
                "return": float(exposure * r),
            }
            for day, exposure, session, r in zip(
                exposures.index[held], exposures.to_numpy()[held], earned_on, asset, strict=True
            )
        ],
    }


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _integer(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _json_row(fields: dict[str, Any]) -> dict[str, Any]:
    return fields | {"day": fields["day"].date().isoformat()}
