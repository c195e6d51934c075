"""Reports of a BacktestResult: a plain-text metrics table, the reproduction of the
published framework with the published numbers and the gaps beside ours, and the HTML
tear sheet served by ``GET /backtest/{id}/report`` (figures: backtest.plots)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from backtest.published import (
    COMBINED,
    FRAMEWORK_SOURCE,
    PUBLISHED_FRAMEWORK_REGIMES,
    PUBLISHED_FRAMEWORK_ROWS,
    PublishedFrameworkRow,
)
from backtest.schemas import MAX_TITLE_LENGTH, BacktestResult, StrategyResult, TimeInvested


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _gap(ours: float | None, published: float, scale: float = 100.0, digits: int = 1) -> str:
    return "n/a" if ours is None else f"{(ours - published) * scale:+.{digits}f}"


def _invested(time: TimeInvested) -> str:
    """'79.0%' when every invested day was held at exactly 1x; otherwise each share held,
    e.g. '20% lev + 52% full + 18% part' (backtest.metrics.time_invested)."""
    shares = {"lev": time.leveraged, "full": time.full, "part": time.partial}
    if any(share is None for share in shares.values()):
        return "n/a"
    if not time.leveraged and not time.partial:
        return _pct(time.full, 1)
    return " + ".join(f"{_pct(share, 0)} {label}" for label, share in shares.items() if share)


def _leverage_cost(strategy: StrategyResult, financing: bool) -> str:
    """What leverage cost a strategy: '-' when it never held more than 1x."""
    if not strategy.metrics.time_invested.leveraged:
        return "-"
    return "cash rate" if financing else "NONE: financing off"


def default_title(names: Sequence[str], max_length: int = MAX_TITLE_LENGTH) -> str:
    """A report's title when its request gives none: the strategies' names, the first
    three and how many more."""
    shown = " vs ".join(names[:3])
    if len(names) > 3:
        shown += f" and {len(names) - 3} more"
    return shown if len(shown) <= max_length else shown[: max_length - 3] + "..."


def report_title(title: str | None, result: BacktestResult) -> str:
    return title or default_title([s.name for s in result.strategies])


def _published_invested(row: PublishedFrameworkRow) -> str:
    if row.time_partial:
        return f"{_pct(row.time_full, 0)} full + {_pct(row.time_partial, 0)} half"
    return _pct(row.time_full, 1)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        )

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def header_lines(result: BacktestResult) -> list[str]:
    period, conv = result.period, result.conventions
    return [
        f"Period: {period.start} .. {period.end} ({period.days} trading days), asset {conv.asset}",
        f"Timing: {conv.timing}",
        f"Costs: {conv.cost_bps:g} bps per unit traded; cash yield "
        f"{'on' if conv.cash_yield else 'off'}; financing of exposure above 1x "
        f"{'on' if conv.financing else 'OFF (leverage costs nothing)'}; cash rate {conv.cash_rate}",
        f"Sharpe: {conv.metrics['sharpe']}; annual return {conv.metrics['annualised_return']}",
        f"Alignment: {conv.alignment}",
        f"Missing inputs: {conv.missing_inputs}",
    ]


def format_result(result: BacktestResult) -> str:
    """Metrics of every strategy, one row each."""
    header = [
        "strategy",
        "ann. return",
        "volatility",
        "Sharpe",
        "excess Sharpe",
        "max DD",
        "DD days",
        "Calmar",
        "time invested",
        "leverage cost",
        "trades",
    ]
    financing = result.conventions.financing
    rows = [
        [
            s.name,
            _pct(s.metrics.annualised_return),
            _pct(s.metrics.annualised_volatility),
            _num(s.metrics.sharpe),
            _num(s.metrics.sharpe_excess),
            _pct(s.metrics.max_drawdown),
            str(s.metrics.max_drawdown_days),
            _num(s.metrics.calmar),
            _invested(s.metrics.time_invested),
            _leverage_cost(s, financing),
            str(s.metrics.trades),
        ]
        for s in result.strategies
    ]
    lines = [*header_lines(result), "", *_table(header, rows)]
    lines += _regime_lines(result.strategies)
    lines += _note_lines(result.notes)
    return "\n".join(lines)


def format_published_comparison(result: BacktestResult) -> str:
    """Our figures beside the published table (gaps in percentage points / Sharpe units)."""
    ours = {s.name: s for s in result.strategies}
    header = [
        "strategy",
        "ann. return",
        "publ.",
        "gap pp",
        "max DD",
        "publ.",
        "gap pp",
        "Sharpe",
        "publ.",
        "gap",
        "time invested",
        "publ.",
    ]
    rows = []
    for row in PUBLISHED_FRAMEWORK_ROWS:
        mine = ours.get(row.strategy)
        m = mine.metrics if mine else None
        rows.append(
            [
                row.strategy,
                _pct(m.annualised_return if m else None),
                _pct(row.annualised_return),
                _gap(m.annualised_return if m else None, row.annualised_return),
                _pct(m.max_drawdown if m else None),
                _pct(row.max_drawdown),
                _gap(m.max_drawdown if m else None, row.max_drawdown),
                _num(m.sharpe if m else None),
                _num(row.sharpe),
                _gap(m.sharpe if m else None, row.sharpe, scale=1.0, digits=2),
                _invested(m.time_invested) if m else "n/a",
                _published_invested(row),
            ]
        )
    lines = [
        f"Reproduction: {FRAMEWORK_SOURCE}",
        *header_lines(result),
        "",
        *_table(header, rows),
    ]
    combined = ours.get(COMBINED)
    if combined is not None and combined.regime_distribution:
        held = ", ".join(f"{k} {_pct(v)}" for k, v in combined.regime_distribution.items())
        published = ", ".join(f"{k} {_pct(v, 0)}" for k, v in PUBLISHED_FRAMEWORK_REGIMES.items())
        lines += ["", f"Regime distribution ({COMBINED}): ours {held}; published {published}"]
    lines += _note_lines(result.notes)
    lines += [
        "",
        "Gaps are reported, not tuned away: thresholds and windows are the published ones.",
    ]
    return "\n".join(lines)


def _regime_lines(strategies: Sequence[StrategyResult]) -> list[str]:
    lines = []
    for s in strategies:
        if s.regime_distribution:
            shares = ", ".join(f"{k} {_pct(v)}" for k, v in s.regime_distribution.items())
            lines.append(f"Regimes held, {s.name}: {shares}")
    return ["", *lines] if lines else []


def _note_lines(notes: Sequence[str]) -> list[str]:
    return ["", "Notes:", *(f"- {note}" for note in notes)] if notes else []


# --- the HTML tear sheet -------------------------------------------------------------

FIGURE_TITLES = {
    "equity": "Equity (log scale), metrics in the legend",
    "drawdowns": "Drawdowns",
    "regimes": "Regimes and exposure held",
    "yearly": "Yearly returns",
    "rolling_sharpe": "Rolling Sharpe ratio",
    "rolling_volatility": "Rolling volatility",
}

TEAR_SHEET_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1240px;
       color: #1d1d1f; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
p.meta { color: #555; margin: 0.1rem 0; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5rem 0; }
figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-weight: 600; margin-bottom: 0.3rem; }
figcaption a { font-weight: normal; font-size: 0.85rem; margin-left: 0.5rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5rem 0.8rem; }
"""


def tear_sheet_html(
    result: BacktestResult,
    *,
    title: str,
    figure_url: Callable[[str, str], str],
    figures: Sequence[str],
    warnings: Sequence[str] = (),
    about: Sequence[str] = (),
) -> str:
    """A self-contained HTML page: title, ``about`` lines (e.g. the run's id), metrics
    table, conventions, notes and one <img> per figure (``figure_url(name, format)``
    gives its address; PNG shown, SVG linked)."""
    header = [
        "strategy",
        "ann. return",
        "volatility",
        "Sharpe",
        "Sortino",
        "max DD",
        "Calmar",
        "time invested",
        "leverage cost",
        "trades",
    ]
    financing = result.conventions.financing
    rows = [
        [
            s.name,
            _pct(s.metrics.annualised_return),
            _pct(s.metrics.annualised_volatility),
            _num(s.metrics.sharpe),
            _num(s.metrics.sortino),
            _pct(s.metrics.max_drawdown),
            _num(s.metrics.calmar),
            _invested(s.metrics.time_invested),
            _leverage_cost(s, financing),
            str(s.metrics.trades),
        ]
        for s in result.strategies
    ]
    table = "".join(
        [
            "<table id='metrics'><thead><tr>",
            "".join(f"<th>{escape(cell)}</th>" for cell in header),
            "</tr></thead><tbody>",
            *(
                "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
                for row in rows
            ),
            "</tbody></table>",
        ]
    )
    meta = "".join(
        f"<p class='meta'>{escape(line)}</p>" for line in [*about, *header_lines(result)]
    )
    notices = "".join(f"<p class='note'>{escape(text)}</p>" for text in warnings)
    notes = ""
    if result.notes:
        notes = "<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in result.notes)
        notes += "</ul>"
    images = "".join(
        f"<figure id='figure-{escape(name)}'><figcaption>"
        f"{escape(FIGURE_TITLES.get(name, name))}"
        f"<a href='{escape(figure_url(name, 'svg'))}'>SVG</a>"
        f"<a href='{escape(figure_url(name, 'png'))}'>PNG</a></figcaption>"
        f"<img src='{escape(figure_url(name, 'png'))}' alt='{escape(name)}' loading='lazy'>"
        "</figure>"
        for name in figures
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{TEAR_SHEET_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{meta}{notices}{table}{images}{notes}</body></html>"
    )
