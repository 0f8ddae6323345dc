"""Ferry's reusable widgets: file panes, path bar, transfer queue panel and summary."""
