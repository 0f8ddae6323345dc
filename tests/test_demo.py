"""``ferry demo``'s engine: sample cases served, sites pinned, a local study ready to send."""

from __future__ import annotations

import pytest

from backend import remote, ssh
from backend.demo.runner import DemoServer
from backend.sites.store import SiteStore


@pytest.fixture
def demo(ferry_home):
    server = DemoServer.start(large_file_mib=1)
    try:
        yield server
    finally:
        server.stop()


async def test_demo_sites_are_pinned_and_list_both_layouts(demo) -> None:
    store = SiteStore()
    idt, ai = store.get("demo"), store.get("demo-ai")
    assert (idt.layout, ai.layout) == ("inbox-outbox", "study-io")
    assert idt.host_keys and idt.port == demo.port
    async with ssh.sftp_session(idt) as (_c, sftp):
        names = [e.name for e in (await remote.list_dir(sftp, "/idt")).entries]
    assert names == ["From_IDT", "Old_Cases", "To_IDT"]
    assert demo.share_url and demo.share_url.startswith("http://127.0.0.1:")


def test_demo_local_workspace_has_a_study_to_send_and_survives_restarts(demo) -> None:
    study = demo.local_dir / "study-to-send" / "series_001"
    images = sorted(study.glob("*.dcm"))
    assert len(images) == 6 and images[0].read_bytes()[128:132] == b"DICM"
    (demo.local_dir / "study-to-send" / "mine.txt").write_text("kept")
    again = DemoServer.start(large_file_mib=1, share_service=False, provider=False)
    try:
        assert (again.local_dir / "study-to-send" / "mine.txt").read_text() == "kept"
    finally:
        again.stop()
