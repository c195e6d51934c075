"""Vectorised backtests of regime strategies. Pure: numpy/pandas in, pydantic models out.

Where things are:

- ``strategies``: strategy configurations (pydantic, discriminated on ``kind``),
  converted to core's RuleSet / ModelMapping.
- ``signals``: the exposure each configuration decides at every close.
- ``engine``: exposures -> daily returns net of costs, cash yield and financing
  (execution lag >= 1; lag 0 is refused as look-ahead); alignment of several
  strategies on one period.
- ``metrics``: every performance metric, defined once (array kernels + pandas
  wrappers), with its convention in ``metrics.CONVENTIONS``.
- ``rates``: daily cash rate from DFF (percent per year) or BIL prices.
- ``schemas``: ``BacktestRequest`` / ``BacktestResult``, the body and answer of
  ``POST /backtest`` and of ``deepregime backtest --config/--json``.
- ``runner``: ``run_backtest(request, inputs)``, from loaded inputs to the result.
- ``published``: the published numbers (as data) and the reproduction request.
- ``report`` and ``plots``: text tables and PNG figures of a run.

Loading inputs from the store is the caller's job (cli/backtest.py: ``load_inputs``).
"""
