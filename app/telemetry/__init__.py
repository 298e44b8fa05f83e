"""Logs, metrics and errors: what a process tells its operators."""
