"""The patch queue: pinned bases, verified downloads, series, headers, strict apply, export, lint,
upstream checks and rebase."""
