"""The queue panel names how a done job's files were checked (issue 12, finding 2): against a
server that cannot exec, an upload reads "sha256 by read-back" and a download (the default,
auto) "size and tail only", never a bare full bar."""

from __future__ import annotations

from backend.demo.server import start_sftp_server
from tests.servers import InProcessServer
from tests.tui import save_site, wait_for
from tests.tui.browser_kit import browser, goto, loaded, local_dir, make_tree
from tui.app import FerryApp
from tui.widgets.queue_panel import QueuePanel


async def test_done_rows_name_the_verification_method(ferry_home, sftp_server, tmp_path,
                                                      monkeypatch, host_key, client_key):
    running = await start_sftp_server(tmp_path / "noexec", host_key=host_key,
                                      authorized_keys=[client_key], allow_exec=False)
    server = InProcessServer(server=running, client_key_path=sftp_server.client_key_path)
    try:
        make_tree(server.root / "data", {"report.pdf": b"r" * 90_000})
        local = local_dir(tmp_path, monkeypatch)
        make_tree(local, {"scan.dcm": b"s" * 70_000})
        save_site(server.site("prov", remote_dir="/data"))
        app = FerryApp(start_site="prov")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await browser(pilot)
            await goto(pilot, screen.left, "scan.dcm")
            await pilot.press("f5")  # local -> remote
            await wait_for(pilot, lambda: app.engine.jobs()
                           and app.engine.jobs()[0].state == "done", seconds=30)
            await pilot.press("tab")
            await loaded(pilot, screen.right, "/data")
            await wait_for(pilot, lambda: "report.pdf" in [e.name for e in screen.right.rows])
            await goto(pilot, screen.right, "report.pdf")
            await pilot.press("f5")  # remote -> local
            await wait_for(pilot, lambda: len(app.engine.jobs()) == 2
                           and all(j.state == "done" for j in app.engine.jobs()), seconds=30)
            await pilot.press("t")
            panel = screen.query_one(QueuePanel)

            def rows() -> list[str]:
                return [" ".join(str(c) for c in panel.table.get_row_at(i))
                        for i in range(panel.table.row_count)]

            await wait_for(pilot, lambda: panel.table.row_count == 2
                           and all("█" not in r for r in rows()))
            down, up = rows()  # newest first: the download, then the upload
            assert "sha256 by read-back" in up and "done" in up
            assert "size and tail only" in down and "done" in down
        assert (server.root / "data" / "scan.dcm").read_bytes() == b"s" * 70_000
        assert (local / "report.pdf").read_bytes() == b"r" * 90_000
    finally:
        running.close()
        await running.wait_closed()
