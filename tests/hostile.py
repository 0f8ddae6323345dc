"""A hostile SFTP server for tests: its listings carry traversal and terminal-escape names.

``HostileSFTPServer`` lists every real entry of a folder plus the names in ``HOSTILE_NAMES``
(as plain files with attributes), the way a compromised or malicious provider could.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncssh

HOSTILE_NAMES: list[bytes] = [
    b"..",
    b"../../escape.txt",
    b"/etc/passwd",
    b"sub/../../x",
    b"",
    b"nul\x00byte",
    b"red\x1b[31malert\x1b[0m.txt",
    b"back\\slash",
    b"bell\x07.txt",
]


class HostileSFTPServer(asyncssh.SFTPServer):
    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for name in super().scandir(path):
            yield name
        for bad in HOSTILE_NAMES:
            attrs = asyncssh.SFTPAttrs(permissions=0o100644, size=5, mtime=0)
            yield asyncssh.SFTPName(bad, bad, attrs)
