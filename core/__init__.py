"""Pure computation of the regime service: numpy/pandas in, numpy/pandas out.

Nothing here touches a database, the network or the clock, so every number the
service, the CLI and training produce comes from the same definitions.
"""
