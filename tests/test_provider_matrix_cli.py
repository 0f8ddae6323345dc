"""The table "What each server kind gets" in docs/transfers.md, checked through the real
``ferry`` command against every server of the matrix (tests/matrix.py): an upload replacing an
existing file and a download, each with the default ``--verify auto``. What the docs promise
per kind is what the user gets: the verification method named, the old file never lost."""

from __future__ import annotations

from backend.sites.store import SiteStore
from tests.test_provider_verify import done_events, ferry
from tests.transfer_helpers import sha256_of, write_random

MiB = 1024 * 1024
UPLOAD = {  # kind -> how `put` (auto) verifies there; None: the upload is refused
    "openssh": "sha256-server", "norename": "sha256-server", "noposix": "sha256-server",
    "readonly": None, "chroot": "sha256-readback", "proftpd": "sha256-readback",
    "s3gateway": "sha256-readback",
}
DOWNLOAD = {kind: ("sha256-server" if up == "sha256-server" or kind == "readonly"
                   else "size+tail") for kind, up in UPLOAD.items()}


async def test_each_server_kind_gets_what_the_docs_promise(matrix_server, ferry_home,
                                                           tmp_path):
    s = matrix_server
    SiteStore().add(s.site("prov"))
    (s.root / "study.zip").write_bytes(b"old study " * 1000)
    old = sha256_of(s.root / "study.zip")
    src = tmp_path / "study.zip"
    want = write_random(src, 2 * MiB + 3, seed=7)

    code, out, err = await ferry("put", str(src), "prov:" + s.remote("study.zip"),
                                 "--on-conflict", "overwrite", "--json")
    expected = UPLOAD[s.kind]
    if expected is None or s.kind == "norename":
        # refused: one line per failed file, exit 11, and the old study is still there
        assert code == 11, (code, err)
        assert sha256_of(s.root / "study.zip") == old
        assert "Traceback" not in err
    else:
        assert code == 0, err
        assert sha256_of(s.root / "study.zip") == want
        (event,) = done_events(out)
        assert event["verified_by"] == expected
        assert (event["server_sha256"] == want) == (expected in ("sha256-server",
                                                                 "sha256-readback"))
    leftovers = sorted(p.name for p in s.root.iterdir() if p.name != "study.zip")
    if s.kind == "norename":
        assert leftovers == ["study.zip.ferrypart"]  # the message names it; nothing else
    else:
        assert leftovers == []

    code, out, err = await ferry("get", "prov:" + s.remote("study.zip"),
                                 str(tmp_path / "back") + "/", "--json")
    assert code == 0, err
    (event,) = done_events(out)
    assert event["verified_by"] == DOWNLOAD[s.kind]
    if DOWNLOAD[s.kind] != "sha256-server":
        assert event["server_sha256"] is None  # never the local hash as if the server's
    assert sha256_of(tmp_path / "back" / "study.zip") == sha256_of(s.root / "study.zip")
