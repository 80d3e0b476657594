"""Operator-facing output: score tables and JSON, explanations, plans, backtests, reports."""
