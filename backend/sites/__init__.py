"""Saved sites: the model, the ``sites.toml`` store and import from ``~/.ssh/config``."""

from backend.sites.model import CIPHER_PROFILES, LAYOUTS, AuthMethod, Site

__all__ = ["CIPHER_PROFILES", "LAYOUTS", "AuthMethod", "Site"]
