"""Backtests: what a candidate runbook set would have done with the incidents the service
really received, against what it did (`remediator backtest`), and the history they read,
from the database or from an `events export` file. Read-only: nothing is written, run or
called."""
