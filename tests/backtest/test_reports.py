"""Reports a quant can trust: leverage financed unless asked otherwise and the row saying
so when not, time invested in four shares, and a title built from the strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.report import default_title, format_result, report_title, tear_sheet_html
from backtest.runner import BacktestInputs, run_backtest
from backtest.schemas import MAX_TITLE_LENGTH, BacktestRequest
from core.errors import NoDataError
from tests.backtest.conftest import inputs_from_closes
from tests.conftest import make_closes

DAILY_RATE = 0.0002  # about 5% a year
HOLD = {"kind": "buy_and_hold"}
# 25% volatility on an asset of about 18%: leveraged on most days, up to 2x.
LEVERED = {
    "kind": "vol_target",
    "base": HOLD,
    "target_volatility": 0.25,
    "max_leverage": 2.0,
    "name": "Levered",
}


@pytest.fixture(scope="module")
def with_rate() -> BacktestInputs:
    closes = make_closes(n_days=400, seed=5)
    rate = pd.Series(DAILY_RATE, index=closes["SPY"].index)
    return inputs_from_closes(closes, cash_rate=rate)


def _run(inputs: BacktestInputs, **options: object):  # type: ignore[no-untyped-def]
    body = {"strategies": [HOLD, LEVERED], "equity_sampling": "daily", **options}
    return run_backtest(BacktestRequest.model_validate(body), inputs)


def test_leverage_pays_the_cash_rate_by_default(with_rate):
    assert BacktestRequest.model_fields["financing"].default is True
    financed, unfinanced = _run(with_rate), _run(with_rate, financing=False)
    assert financed.result.conventions.financing is True
    positions = financed.simulation.positions["Levered"]
    assert (positions > 1.0).mean() > 0.5
    # Each day the borrowed part (position - 1, when above 0) pays that day's rate.
    borrowed = np.clip(positions.to_numpy() - 1.0, 0.0, None)
    np.testing.assert_allclose(
        financed.simulation.returns["Levered"].to_numpy(),
        unfinanced.simulation.returns["Levered"].to_numpy() - borrowed * DAILY_RATE,
        rtol=0,
        atol=1e-15,
    )
    # Buy & hold borrows nothing: financing changes none of its figures.
    assert financed.result.strategies[0].metrics == unfinanced.result.strategies[0].metrics


def test_unfinanced_leverage_is_said_in_that_strategys_row(with_rate):
    financed = format_result(_run(with_rate).result).splitlines()
    unfinanced = format_result(_run(with_rate, financing=False).result).splitlines()
    header = next(line for line in unfinanced if line.startswith("strategy"))
    assert "leverage cost" in header
    row = {line.split("  ")[0]: line for line in unfinanced if line.startswith(("Buy", "Lev"))}
    assert "NONE: financing off" in row["Levered"]
    assert " - " in row["Buy & hold"] and "NONE" not in row["Buy & hold"]  # never above 1x
    assert not any("NONE" in line for line in financed)
    assert any(line.startswith("Levered") and "cash rate" in line for line in financed)
    assert any("financing of exposure above 1x OFF" in line for line in unfinanced)


def test_leverage_without_a_cash_rate_is_refused_naming_the_way_out():
    inputs = inputs_from_closes(make_closes(n_days=400, seed=5))  # no cash rate
    with pytest.raises(NoDataError, match="set cash_yield and financing to false"):
        _run(inputs)
    assert _run(inputs, financing=False).result.conventions.financing is False
    # Nothing leveraged: nothing to finance, so no rate is needed.
    plain = BacktestRequest.model_validate({"strategies": [HOLD]})
    assert run_backtest(plain, inputs).result.conventions.financing is True


def test_time_invested_separates_leveraged_full_partial_and_none(with_rate):
    run = _run(with_rate)
    for strategy in run.result.strategies:
        held = run.simulation.positions[strategy.name].to_numpy()
        shares = strategy.metrics.time_invested
        assert shares.leveraged == pytest.approx(np.mean(held > 1.0))
        assert shares.full == pytest.approx(np.mean(held == 1.0))
        assert shares.partial == pytest.approx(np.mean((held > 0.0) & (held < 1.0)))
        assert shares.none == pytest.approx(np.mean(held <= 0.0))
    levered = run.result.strategies[1].metrics.time_invested
    cell = next(line for line in format_result(run.result).splitlines() if "Levered" in line)
    assert f"{levered.leveraged * 100:.0f}% lev" in cell
    hold = next(line for line in format_result(run.result).splitlines() if "Buy & hold" in line)
    assert "100.0%" in hold and "lev" not in hold


def test_a_title_from_the_request_else_from_the_strategies_names(with_rate):
    result = _run(with_rate).result
    assert report_title(None, result) == "Buy & hold vs Levered"
    assert report_title("Leverage study", result) == "Leverage study"
    assert default_title(["A", "B", "C", "D", "E"]) == "A vs B vs C and 2 more"
    long = default_title(["x" * 150, "y" * 150])
    assert len(long) == MAX_TITLE_LENGTH and long.endswith("...")
    html = tear_sheet_html(
        result,
        title="Leverage <study>",
        figure_url=lambda name, fmt: f"/f/{name}.{fmt}",
        figures=["equity"],
        about=["Backtest run abc"],
    )
    assert "<title>Leverage &lt;study&gt;</title>" in html
    assert "<h1>Leverage &lt;study&gt;</h1>" in html
    assert "<p class='meta'>Backtest run abc</p>" in html
    with pytest.raises(ValueError, match="title"):
        BacktestRequest.model_validate({"strategies": [HOLD], "title": ""})
    with pytest.raises(ValueError, match="title"):
        BacktestRequest.model_validate({"strategies": [HOLD], "title": "t" * 201})
