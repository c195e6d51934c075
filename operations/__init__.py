"""Use cases: what the command line, the API and the scheduler all do, written once.

``update`` runs the daily cycle (ingest, features, regimes, model outputs,
publication, notifications) under one lock; ``activation`` activates a model
version; ``answers`` reads a day's answer from stored rows; ``backtests`` loads
a backtest's inputs and runs it. ``app/`` and ``cli/`` only adapt these to HTTP
and to the terminal.
"""
