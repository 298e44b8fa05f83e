"""The database: engine settings per dialect, warm-up at boot, statement helpers."""
