"""Which secrets a site needs, and fetching them from an unlocked vault.

The one UI-free piece of "site name in, credentials out" shared by the CLI
(``tui/cli/connect.py``, which unlocks the vault with a terminal prompt) and the TUI
(``tui/app.py``, which unlocks it with a masked dialog). A password is needed for password
auth; a key passphrase when the site's key file is encrypted. A site that needs neither never
touches the vault.
"""

from __future__ import annotations

from collections.abc import Callable

from backend import ssh
from backend.errors import AuthError
from backend.keys import key_needs_passphrase
from backend.sites.model import Site, secret_name
from backend.vault import Vault


def needs_password(site: Site) -> bool:
    return site.auth == "password"


def needs_passphrase(site: Site) -> bool:
    return bool(site.key_file) and key_needs_passphrase(site.key_file or "")


def needs_vault(site: Site) -> bool:
    """True if connecting to ``site`` needs a secret from the vault."""
    return needs_password(site) or needs_passphrase(site)


def chain(site: Site, lookup: Callable[[str], Site], limit: int = 4) -> list[Site]:
    """``site`` and its jump hosts (nearest first), as far as ``lookup`` resolves them."""
    out = [site]
    hop = site.jump
    while hop is not None and len(out) < limit and hop not in {s.name for s in out}:
        nxt = lookup(hop)
        out.append(nxt)
        hop = nxt.jump
    return out


def from_vault(site: Site, vault: Vault | None) -> ssh.Credentials:
    """The credentials ``site`` needs, read from ``vault`` (``None``: no vault exists)."""
    password = needs_password(site)
    passphrase = needs_passphrase(site)
    if not (password or passphrase):
        return ssh.Credentials()
    if vault is None:
        what = "password" if password else "key passphrase"
        flag = "--password-stdin" if password else "--key-passphrase-stdin"
        raise AuthError(
            f"site {site.name} needs a {what} but no vault exists",
            hint=f"ferry sites edit {site.name} {flag}",
        )
    return ssh.Credentials(
        password=vault.get(secret_name(site.name, "password")) if password else None,
        key_passphrase=vault.get(secret_name(site.name, "passphrase")) if passphrase else None,
    )
