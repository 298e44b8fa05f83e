"""The Redis broker Dramatiq runs on, its consumers, and the combining of calls into batches."""
