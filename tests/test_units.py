"""One size formatter (backend/units.py) for the CLI, the TUI and the share pages: the same byte
count reads the same everywhere, and the compact style fits a 6-cell column."""

from __future__ import annotations

import aiohttp
import pytest

from backend.shares.client import ShareClient, local_file_source
from backend.units import human_size


@pytest.mark.parametrize(
    ("n", "long", "compact"),
    [
        (0, "0 Bytes", "0B"),
        (1, "1 Byte", "1B"),
        (700, "700 Bytes", "700B"),
        (1023, "1023 Bytes", "1.0K"),
        (1536, "1.5 KiB", "1.5K"),
        (150 * 1024, "150.0 KiB", "150K"),
        (5 * 2**20, "5.0 MiB", "5.0M"),
        (int(1.2 * 2**30), "1.2 GiB", "1.2G"),
        (3 * 2**40, "3.0 TiB", "3.0T"),
        (2**62, "4.0 EiB", "4096P"),
    ],
)
def test_both_styles(n: int, long: str, compact: str) -> None:
    assert human_size(n) == long
    assert human_size(n, compact=True) == compact
    assert len(compact) <= 6 or n >= 1000 * 2**50


async def test_share_page_writes_a_size_as_ferry_ls_and_the_queue_do(svc, tmp_path) -> None:
    src = tmp_path / "report.pdf"
    src.write_bytes(b"x" * 700)
    created = await ShareClient().create(
        local_file_source(src), size=700, name=src.name, generate_password=True
    )
    async with aiohttp.ClientSession() as session, session.get(
        created["links"][0]["url"]
    ) as resp:
        page = await resp.text()
    assert resp.status == 200
    assert "700 Bytes" in page  # was "700 bytes" on the page, "700 Bytes" in ferry ls
