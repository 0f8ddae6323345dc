"""Whether a host names this machine's loopback (127.0.0.0/8, ::1, ``localhost``).

One check for the places that treat loopback peers differently: the share service (plain
HTTP and trusted proxy headers only on loopback) and streamed upload hashing (off when the
SFTP server is this machine).
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses; False for anything else, names included."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
