"""Connections to Redis (direct or through Sentinel), the Redis broker Dramatiq runs on, its
consumers, and the combining of calls into batches."""
