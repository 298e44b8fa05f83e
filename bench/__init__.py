"""Benchmarks run by `make bench` (`python -m bench`): P1 API latency, P2 job throughput.

Each starts its own redis-server on a free loopback port and a temporary SQLite database
(plus a scratch PostgreSQL database when BENCH_DATABASE_URL is set), and prints its figures
as ratios against a baseline measured in the same run.
"""
