"""Logs, metrics, errors and traces: what a process tells its operators."""
