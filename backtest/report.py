"""Plain-text reports of a BacktestResult: a metrics table, and the reproduction of the
published framework with the published numbers and the gaps beside ours."""

from __future__ import annotations

from collections.abc import Sequence

from backtest.published import (
    COMBINED,
    FRAMEWORK_SOURCE,
    PUBLISHED_FRAMEWORK_REGIMES,
    PUBLISHED_FRAMEWORK_ROWS,
    PublishedFrameworkRow,
)
from backtest.schemas import BacktestResult, StrategyResult, TimeInvested


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _gap(ours: float | None, published: float, scale: float = 100.0, digits: int = 1) -> str:
    return "n/a" if ours is None else f"{(ours - published) * scale:+.{digits}f}"


def _invested(time: TimeInvested) -> str:
    if time.full is None or time.partial is None:
        return "n/a"
    if time.partial > 0.0:
        return f"{_pct(time.full, 0)} full + {_pct(time.partial, 0)} part"
    return _pct(time.full, 1)


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
        f"{'on' if conv.cash_yield else 'off'}; financing {'on' if conv.financing else 'off'}; "
        f"cash rate {conv.cash_rate}",
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
        "trades",
    ]
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
        mine = ", ".join(f"{k} {_pct(v)}" for k, v in combined.regime_distribution.items())
        published = ", ".join(f"{k} {_pct(v, 0)}" for k, v in PUBLISHED_FRAMEWORK_REGIMES.items())
        lines += ["", f"Regime distribution ({COMBINED}): ours {mine}; published {published}"]
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
