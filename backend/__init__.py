"""Ferry's engine: sites, SSH sessions, remote file system, transfers, crypto, shares, cases, audit.

Nothing in this package imports Textual, Rich or ``tui``, prints, or prompts. It raises the typed
errors of :mod:`backend.errors` and reports progress through callbacks and async iterators.
"""

__version__ = "0.1.0"
