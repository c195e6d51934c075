"""The dashboard: one page served by the app, its script and style beside it (no CDN).

``GET /dashboard`` shows today's answer of a market and rule set chosen from
``GET /markets`` (default: the default policy; each filter's value against its
threshold and how far it is from flipping, the model's probability, stale and degraded
banners), follows ``/regime/stream`` for the selection's publications (redrawing the
card, the history and the statistics), draws the history over a chosen span
(``GET /dashboard/history.{png,svg}``: the market with the regime shading, the exposure
held and the drawdowns, drawn by backtest.plots; the span drawn in its headers), shows
``GET /regimes/stats``, and posts a backtest form to ``POST /backtest`` (the result
links to its tear sheet).
"""

from app.dashboard.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
