"""Import from an OpenSSH client config: realistic configs map right, hostile ones never crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import ConfigError
from backend.sites.model import Site
from backend.sites.sshconfig import import_into_store, parse_ssh_config
from backend.sites.store import SiteStore

REALISTIC = """\
# work
Host bastion
    HostName bastion.example.org
    User admin
    Port 2200
    IdentityFile ~/.ssh/id_bastion

Host lab lab-backup
    HostName %h.hospital.internal
    ProxyJump bastion

Host provider
    HostName = sftp.provider.com
    User case-upload
    IdentityFile "%d/.ssh/provider %r"
    ProxyJump relay@relay.example.org:2022

Host *.internal !legacy
    User nobody

Host *
    ServerAliveInterval 15
    User fallback
"""


def _write(tmp_path: Path, text: str | bytes, name: str = "config") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def _by_name(sites: list[Site]) -> dict[str, Site]:
    return {s.name: s for s in sites}


def test_realistic_config_maps_to_sites(tmp_path: Path) -> None:
    result = parse_ssh_config(_write(tmp_path, REALISTIC))
    sites = _by_name(result.sites)
    assert set(sites) == {"bastion", "lab", "lab-backup", "provider", "relay.example.org"}
    bastion = sites["bastion"]
    assert (bastion.host, bastion.port, bastion.user, bastion.auth) == (
        "bastion.example.org", 2200, "admin", "key")
    assert bastion.key_file == str(Path.home() / ".ssh" / "id_bastion")
    assert bastion.keepalive == 15
    lab = sites["lab"]
    assert (lab.host, lab.user, lab.auth, lab.jump) == (
        "lab.hospital.internal", "fallback", "agent", "bastion")
    assert sites["lab-backup"].host == "lab-backup.hospital.internal"
    provider = sites["provider"]
    assert provider.key_file == f"{Path.home()}/.ssh/provider case-upload"
    assert provider.jump == "relay.example.org"
    relay = sites["relay.example.org"]
    assert (relay.host, relay.user, relay.port) == ("relay.example.org", "relay", 2022)
    order = [s.name for s in result.sites]
    assert order.index("bastion") < order.index("lab")
    assert order.index("relay.example.org") < order.index("provider")
    skipped = dict(result.skipped)
    assert "wildcard" in skipped["Host *"] and "wildcard" in skipped["Host *.internal"]
    assert "Host !legacy" in skipped


def test_proxycommand_is_reported_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"Host evil\n  HostName e.example.org\n  ProxyCommand touch {marker}\n"
    text += "Host fine\n  HostName f.example.org\n  ProxyCommand none\n"
    result = parse_ssh_config(_write(tmp_path, text))
    assert [s.name for s in result.sites] == ["fine"]
    assert "ProxyCommand" in dict(result.skipped)["evil"]
    assert not marker.exists()


def test_match_blocks_and_their_settings_are_ignored(tmp_path: Path) -> None:
    text = "Host a\n  HostName a.example.org\nMatch host a.example.org\n  User matched\n  Port 1\n"
    result = parse_ssh_config(_write(tmp_path, text))
    site = _by_name(result.sites)["a"]
    assert site.port == 22 and site.user != "matched"
    assert any(what.startswith("Match") for what, _ in result.skipped)


def test_hostile_config_is_reported_never_crashes(tmp_path: Path) -> None:
    text = (
        b"Host ok\n  HostName ok.example.org\n"
        b"Host long\n  HostName " + b"x" * 100_000 + b"\n"
        b"Host nul\x00byte\n  HostName n.example.org\n"
        b"Host -oProxyCommand=sh\n  HostName x.example.org\n"
        b"Host badport\n  HostName b.example.org\n  Port 99999\n"
        b"Host wordport\n  Port twenty\n"
        b"Host quote\n  HostName \"unterminated\n"
        b"Host badhost\n  HostName bad;rm -rf /\n"
        b"Host \xff\xfe\n  HostName latin.example.org\n"
        b"Host tokens\n  IdentityFile ~/.ssh/%C\n"
        b"Host envvar\n  IdentityFile ${HOME}/.ssh/id\n"
        b"Host ok\n  Port 2222\n"
        b"Host hops\n  ProxyJump a.example.org,b.example.org\n"
        b"Host self\n  ProxyJump self\n"
        b"Host viaskipped\n  ProxyJump badport\n"
        b"Host uri\n  ProxyJump ssh://u@h:22\n"
        b"Host\n"
    )
    result = parse_ssh_config(_write(tmp_path, text))
    sites = _by_name(result.sites)
    assert set(sites) == {"ok"}
    assert sites["ok"].port == 2222  # the duplicate block is merged as ssh does
    skipped = dict(result.skipped)
    assert "unreadable line" in skipped["long"] and "unreadable line" in skipped["quote"]
    assert "-oProxyCommand=sh" in skipped and "invalid site name" in skipped["-oProxyCommand=sh"]
    assert "not 1-65535" in skipped["badport"] and "not 1-65535" in skipped["wordport"]
    assert "invalid host" in skipped["badhost"]
    assert "%C" in skipped["tokens"] and "environment" in skipped["envvar"]
    assert "several hops" in skipped["hops"]
    assert "itself" in skipped["self"]
    assert "badport was not imported" in skipped["viaskipped"]
    assert "not a form" in skipped["uri"]
    reasons = " | ".join(why for _, why in result.skipped)
    assert "longer than 4096" in reasons and "NUL byte" in reasons
    assert "unbalanced quotes" in reasons and "Host line without a name" in reasons
    assert any(name == "ok" and "more than one Host block" in why for name, why in result.notes)


def test_include_is_followed_with_loop_and_depth_limits(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    _write(conf, "Host included\n  HostName inc.example.org\nInclude config\n", "a.conf")
    _write(conf, "Host second\n  HostName s.example.org\n", "b.conf")
    for i in range(20):
        _write(conf, f"Host deep{i}\n  HostName d{i}.example.org\nInclude conf.d/chain{i + 1}\n",
               f"chain{i}")
    main = _write(tmp_path, "Include conf.d/*.conf conf.d/chain0 /dev/zero\n"
                            "Host top\n  HostName top.example.org\n")
    result = parse_ssh_config(main)
    names = {s.name for s in result.sites}
    assert {"included", "second", "top", "deep0", "deep14"} <= names
    assert "deep19" not in names
    reasons = " | ".join(why for _, why in result.skipped)
    assert "loops back" in reasons
    assert "nested deeper than 16" in reasons
    assert "not a regular file" in reasons


def test_include_fan_out_is_bounded(tmp_path: Path) -> None:
    for i in range(8):
        _write(tmp_path, f"Host h{i}\n" + f"Include f{i + 1} f{i + 1} f{i + 1}\n", f"f{i}")
    result = parse_ssh_config(_write(tmp_path, "Include f0\n"))
    assert any("more than 64 config files" in why for _, why in result.skipped)


def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ssh config at"):
        parse_ssh_config(tmp_path / "nope")


def test_import_never_overwrites_existing_sites(ferry_home: Path, tmp_path: Path) -> None:
    store = SiteStore()
    store.add(Site(name="bastion", host="mine.example.org", user="me"))
    result = parse_ssh_config(_write(tmp_path, REALISTIC))
    added, skipped = import_into_store(result, store)
    assert "bastion" not in {s.name for s in added}
    assert ("bastion", "a site with this name already exists; not overwritten") in skipped
    assert store.get("bastion").host == "mine.example.org"
    assert store.get("lab").jump == "bastion"
    assert len(store.list()) == 5
