"""The sites.toml store: round trips, hand edits survive, corrupt files are refused untouched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncssh
import pytest

from backend.errors import ConfigError
from backend.sites.model import Site
from backend.sites.store import SiteStore


def _key_line(comment: str = "") -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key.export_public_key("openssh").decode().split()[0] + " " + key.export_public_key(
        "openssh"
    ).decode().split()[1] + (f" {comment}" if comment else "")


def test_added_site_round_trips_with_private_modes(ferry_home: Path) -> None:
    store = SiteStore()
    site = Site(name="clinic", host="sftp.example.org", port=2222, user="alice",
                auth="key", key_file="/keys/id", layout="study-io", jump=None,
                layout_folders={"input": "in"})
    store.add(site)
    assert store.get("clinic") == site
    assert [s.name for s in store.list()] == ["clinic"]
    path = ferry_home / "sites.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(ferry_home.stat().st_mode) == 0o700
    assert "[sites.clinic]" in path.read_text()


def test_unknown_site_names_the_known_ones(ferry_home: Path) -> None:
    store = SiteStore()
    store.add(Site(name="a", host="h", user="u"))
    store.add(Site(name="b", host="h", user="u"))
    with pytest.raises(ConfigError) as err:
        store.get("zzz")
    assert "no site named zzz; known: a, b" in str(err.value)
    assert err.value.hint == "ferry sites list"


def test_duplicate_name_is_refused(ferry_home: Path) -> None:
    store = SiteStore()
    store.add(Site(name="a", host="h1", user="u"))
    with pytest.raises(ConfigError, match="already exists"):
        store.add(Site(name="a", host="h2", user="u"))
    assert store.get("a").host == "h1"


def test_invalid_site_is_refused_before_writing(ferry_home: Path) -> None:
    store = SiteStore()
    with pytest.raises(ConfigError, match="port"):
        store.add(Site(name="a", host="h", user="u", port=70000))
    assert not (ferry_home / "sites.toml").exists()


def test_hand_comments_and_unknown_keys_survive_edits(ferry_home: Path) -> None:
    store = SiteStore()
    store.add(Site(name="lab", host="lab.example.org", user="u"))
    store.add(Site(name="other", host="o.example.org", user="u"))
    path = ferry_home / "sites.toml"
    text = path.read_text().replace(
        "[sites.lab]\n",
        "# the imaging lab, ask Dana before changing\n[sites.lab]\n"
        "future_option = \"kept\"  # set by a newer Ferry\n",
    )
    path.write_text(text)
    store.update("lab", port=2200, remote_dir="/data")
    store.pin_host_key("lab", _key_line())
    store.record_connected("lab")
    store.update("other", user="bob")
    after = path.read_text()
    assert "# the imaging lab, ask Dana before changing" in after
    assert 'future_option = "kept"  # set by a newer Ferry' in after
    lab = store.get("lab")
    assert (lab.port, lab.remote_dir, len(lab.host_keys)) == (2200, "/data", 1)
    assert lab.last_connected is not None and lab.last_connected.startswith("20")


def test_rename_repoints_jump_users(ferry_home: Path) -> None:
    store = SiteStore()
    store.add(Site(name="bastion", host="b", user="u"))
    store.add(Site(name="inner", host="i", user="u", jump="bastion"))
    renamed = store.update("bastion", name="gateway")
    assert renamed.name == "gateway"
    assert store.get("inner").jump == "gateway"
    assert store.names() == ["inner", "gateway"]
    with pytest.raises(ConfigError, match="no site named bastion"):
        store.get("bastion")


def test_jump_must_exist_and_cannot_loop(ferry_home: Path) -> None:
    store = SiteStore()
    with pytest.raises(ConfigError, match="jump host nope is not a saved site"):
        store.add(Site(name="a", host="h", user="u", jump="nope"))
    store.add(Site(name="a", host="h", user="u"))
    store.add(Site(name="b", host="h", user="u", jump="a"))
    with pytest.raises(ConfigError, match="loop"):
        store.update("a", jump="b")
    with pytest.raises(ConfigError, match="jump host of b"):
        store.remove("a")


def test_remove_deletes_only_that_site(ferry_home: Path) -> None:
    store = SiteStore()
    store.add(Site(name="a", host="h", user="u"))
    store.add(Site(name="b", host="h", user="u"))
    removed = store.remove("a")
    assert removed.name == "a"
    assert store.names() == ["b"]


def test_pinned_keys_are_not_duplicated(ferry_home: Path) -> None:
    store = SiteStore()
    store.add(Site(name="a", host="h", user="u"))
    line = _key_line("host1")
    assert store.pin_host_key("a", line) is True
    same_key_other_comment = " ".join(line.split()[:2]) + " renamed"
    assert store.pin_host_key("a", same_key_other_comment) is False
    assert store.get("a").host_keys == [line]
    other = _key_line()
    store.replace_host_keys("a", [other, other])
    assert store.get("a").host_keys == [other]
    with pytest.raises(ConfigError, match="OpenSSH public key"):
        store.pin_host_key("a", "ssh-ed25519 notbase64!!")


def test_two_stores_do_not_clobber_each_other(ferry_home: Path) -> None:
    first, second = SiteStore(), SiteStore()
    first.add(Site(name="a", host="h", user="u"))
    second.add(Site(name="b", host="h", user="u"))
    first.update("a", port=2022)
    assert {s.name: s.port for s in second.list()} == {"a": 2022, "b": 22}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[sites.a\nhost = 'h'\n", ":1: invalid TOML"),
        ("[sites.a]\nhost = 'h'\nport = 'twenty-two'\n", ":3: site a: port must be an integer"),
        ("[sites.a]\nhost = 'h'\nuser = 'u'\nauth = 'telepathy'\n", ":4: site a: auth must be"),
        ("[sites.a]\nhost = 'h'\nuser = 'u'\nport = 99999\n", ":4: site a: port must be 1-65535"),
        ("[sites.a]\nhost = 'h'\nallow_exec = 'yes'\n", "allow_exec must be true or false"),
        ("[sites.a]\nport = 22\n", "site a: missing 'host'"),
        ("sites = 3\n", "'sites' must be a table"),
    ],
)
def test_corrupt_file_is_reported_and_left_untouched(
    ferry_home: Path, content: str, expected: str
) -> None:
    ferry_home.mkdir(parents=True, exist_ok=True)
    path = ferry_home / "sites.toml"
    path.write_text(content)
    before = path.read_bytes()
    store = SiteStore()
    with pytest.raises(ConfigError) as err:
        store.list()
    assert str(path) in str(err.value) and expected in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        store.add(Site(name="new", host="h", user="u"))
    assert path.read_bytes() == before


def test_secret_in_sites_file_is_refused(ferry_home: Path) -> None:
    ferry_home.mkdir(parents=True, exist_ok=True)
    path = ferry_home / "sites.toml"
    path.write_text("[sites.a]\nhost = 'h'\npassword = 'hunter2hunter2'\n")
    with pytest.raises(ConfigError) as err:
        SiteStore().get("a")
    message = str(err.value)
    assert "ferry sites edit a --password-stdin" in message
    assert ":3:" in message
    assert "hunter2hunter2" not in message


def test_unknown_keys_are_not_fatal(ferry_home: Path) -> None:
    ferry_home.mkdir(parents=True, exist_ok=True)
    (ferry_home / "sites.toml").write_text("[sites.a]\nhost = 'h'\nuser = 'u'\nshiny = 1\n")
    assert SiteStore().get("a").host == "h"


def test_lock_file_is_private(ferry_home: Path) -> None:
    SiteStore().add(Site(name="a", host="h", user="u"))
    lock = ferry_home / ".sites.toml.lock"
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
