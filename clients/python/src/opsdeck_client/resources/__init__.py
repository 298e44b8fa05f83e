"""The typed calls, one module per area of the API (as app/api/ has them)."""
