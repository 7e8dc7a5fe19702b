"""The plan stage's adapters (this branch: the recurrent-layer adapter; the package is plan-core's)."""
