"""The same strategies replayed in backtrader, an event-driven engine users often pick.

Used by ``bench_backtrader.py`` (speed ratio) and by the peer-agreement test.
Each strategy's daily exposure, decided at the close of day t, is sent to
backtrader as ``order_target_percent`` filled at that same close
(cheat-on-close), so the position earns close t -> close t+1: the convention of
backtest.engine with lag 1. No commission; the broker may borrow (leverage).
"""

from __future__ import annotations

import backtrader as bt
import pandas as pd

START_CASH = 1e10  # large, so whole-share rounding is below 1e-7 of equity


class MarginAccount(bt.CommInfoBase):
    """Stock-like, commission-free, on margin: a long position ties up only
    1/leverage of its value in cash, so exposures above 1x can be held. Sizes are
    the plain value / price (the base class would multiply them by the leverage)."""

    params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_PERC), ("leverage", 4.0))

    def getsize(self, price: float, cash: float) -> int:
        return int(cash // price)


class TargetExposure(bt.Strategy):
    params = (("targets", None),)

    def next(self) -> None:
        target = self.p.targets.get(self.data.datetime.date(0))
        if target is not None:
            self.order_target_percent(target=float(target))


def replay(asset_close: pd.Series, targets: pd.Series) -> float:
    """Final wealth (start 1.0) of trading ``targets`` (exposure decided at each
    close, index = dates) on ``asset_close`` (adjusted close, total return)."""
    prices = pd.DataFrame(
        {c: asset_close.to_numpy() for c in ("open", "high", "low", "close")},
        index=pd.DatetimeIndex(asset_close.index),
    )
    prices["volume"] = 0.0
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=prices))
    cerebro.addstrategy(TargetExposure, targets={d.date(): v for d, v in targets.items()})
    cerebro.broker.setcash(START_CASH)
    cerebro.broker.set_coc(True)  # fill at the close that produced the signal
    cerebro.broker.addcommissioninfo(MarginAccount())
    cerebro.run()
    return cerebro.broker.getvalue() / START_CASH


def targets_from_positions(positions: pd.Series, calendar: pd.DatetimeIndex) -> pd.Series:
    """Exposure to set at each close so the next day holds ``positions`` (lag 1)."""
    previous_day = calendar[calendar.get_loc(positions.index[0]) - 1]
    held_next = positions.shift(-1).dropna()
    return pd.concat([pd.Series([positions.iloc[0]], index=[previous_day]), held_next])
