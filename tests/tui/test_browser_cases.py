"""Case markers in the browser for both provider layouts (the demo's sample cases), and the
UI-free pieces under the browser: backend.cases.layout and backend.localfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend import localfs
from backend.cases.layout import case_markers, relative, resolve_folders
from backend.demo.samples import populate
from backend.errors import ConfigError, RemoteNotFoundError
from backend.remote import RemoteEntry
from tests.tui.browser_kit import browser, goto, loaded, local_dir, register_site
from tui.app import FerryApp


def _dir(name: str) -> RemoteEntry:
    return RemoteEntry(name=name, kind="dir", size=0, mtime=0.0, mode=0o755)


async def test_inbox_cases_are_new_unless_archived() -> None:
    tree = {
        "/p": {"From_ACME", "To_ACME", "Old_Cases"},
        "/p/Old_Cases": {"2024"},
        "/p/Old_Cases/2024": {"CASE-1"},
    }

    async def names(path: str) -> set[str]:
        if path not in tree:
            raise RemoteNotFoundError(path)
        return tree[path]

    inbox = [_dir("CASE-1"), _dir("CASE-2")]
    marks = await case_markers("inbox-outbox", "/p", "/p/From_ACME", inbox, names)
    assert {n: m.state for n, m in marks.items()} == {"CASE-1": "archived", "CASE-2": "new"}
    root = await case_markers("inbox-outbox", "/p", "/p", [_dir(n) for n in tree["/p"]], names)
    assert {n: m.state for n, m in root.items()} == {
        "From_ACME": "inbox", "To_ACME": "outbox", "Old_Cases": "archive"}
    out = await case_markers("inbox-outbox", "/p", "/p/To_ACME", [_dir("CASE-3")], names)
    assert out["CASE-3"].state == "outgoing"
    assert await case_markers("generic", "/p", "/p/From_ACME", inbox, names) == {}
    assert await case_markers("inbox-outbox", "/p", "/elsewhere", inbox, names) == {}


async def test_studies_with_an_out_folder_have_results_ready() -> None:
    async def names(path: str) -> set[str]:
        return {"s1_out"} if path == "/ai/output" else {"input", "output"}

    marks = await case_markers("study-io", "/ai", "/ai/input", [_dir("s1"), _dir("s2")], names)
    assert marks["s1"].state == "results ready"
    assert marks["s2"].state == "processing"
    configured = resolve_folders("study-io", {"output": "results/"}, ["input", "results"])
    assert configured.output == "results" and configured.input == "input"
    assert relative("/ai", "/ai/input/x") == "input/x"
    assert relative("/ai", "/aix") is None


def test_local_delete_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.dcm").write_bytes(b"keep")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_bytes(b"a")
    os.symlink(outside, tree / "sub" / "link-to-outside")
    plan = localfs.plan_delete(str(tree))
    assert [i.relpath for i in plan] == ["tree", "tree/sub", "tree/sub/a.txt",
                                         "tree/sub/link-to-outside"]
    assert localfs.delete(str(tree)) == 4
    assert not tree.exists()
    assert (outside / "precious.dcm").read_bytes() == b"keep"


def test_local_rename_refuses_to_replace(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    with pytest.raises(ConfigError):
        localfs.rename(str(tmp_path), "a", "b")
    assert (tmp_path / "b").read_bytes() == b"b"
    with pytest.raises(RemoteNotFoundError):
        localfs.list_dir(str(tmp_path / "missing"))


def _states(pane) -> dict[str, str]:
    column = pane.spec.keys.index("state")
    return {e.name: str(pane.table.get_row_at(i)[column]) for i, e in enumerate(pane.rows)}


async def test_browser_marks_inbox_cases(ferry_home, sftp_server, tmp_path, monkeypatch):
    populate(sftp_server.root, large_file_mib=1)
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, "demo", remote_dir="/idt", layout="inbox-outbox")
    app = FerryApp(start_site="demo")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browser(pilot)
        right = screen.right
        assert _states(right)["From_IDT"] == "inbox"
        await pilot.press("tab")
        await goto(pilot, right, "From_IDT")
        await pilot.press("enter")
        await loaded(pilot, right, "/idt/From_IDT")
        states = _states(right)
        assert states["CASE-20261118-0031"] == "new"
        assert states["README-from-provider.txt"] == ""
        assert "new case from the provider" in str(right.query_one(".pane-status").render())


async def test_browser_marks_studies_with_results(ferry_home, sftp_server, tmp_path, monkeypatch):
    created = populate(sftp_server.root, large_file_mib=1)
    local_dir(tmp_path, monkeypatch)
    register_site(sftp_server, "demo-ai", remote_dir="/ai", layout="study-io")
    app = FerryApp(start_site="demo-ai")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await browser(pilot)
        right = screen.right
        await pilot.press("tab")
        await goto(pilot, right, "input")
        await pilot.press("enter")
        await loaded(pilot, right, "/ai/input")
        states = _states(right)
        studies = created["studies"]
        assert [states[s] for s in studies] == ["results ready", "results ready", "processing"]
