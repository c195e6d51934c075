"""The dashboard: one page served by the app, its script and style beside it (no CDN).

``GET /dashboard`` shows today's answer of the default policy (each filter's value
against its threshold and how far it is from flipping, the model's probability, stale
and degraded banners), follows ``/regime/stream`` for new publications, draws the
history over a chosen span (``GET /dashboard/history.{png,svg}``: the asset with the
regime shading, the exposure held and the drawdowns, drawn by backtest.plots), and
posts a backtest form to ``POST /backtest`` (the result links to its tear sheet).
"""

from app.dashboard.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
