"""The Dash app (read-only over the atlas database)."""
