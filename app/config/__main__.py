"""`python -m app.config`: the settings table of docs/configuration.md."""

from app.config import settings_markdown

print(settings_markdown(), end="")
