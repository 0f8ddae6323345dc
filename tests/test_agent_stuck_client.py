"""A client that stops reading never holds up the agent's transfers (docs/agent.md,
"Protocol"): its events queue for it alone, and a client whose queue overflows is dropped.

A raw client subscribes to every event with the highest progress rate and a tiny receive
buffer, then never reads. Meanwhile ``ferry get`` moves a 400-file folder through the same
agent (each file sends events to every subscriber): it completes with every byte right, the
agent answers other clients throughout, and the stuck client is still connected (nobody wrote
to it synchronously, nothing blocked on it).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from backend.agent import location
from backend.sites.store import SiteStore
from tests.agent_helpers import agent_home, ferry  # noqa: F401 (fixture)
from tests.transfer_helpers import sha256_of, write_random

FILES = 400


def _stuck_client() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(str(location.socket_path()))
    hello = {"type": "hello", "version": 1, "client": "stuck"}
    subscribe = {"type": "request", "id": 1, "method": "subscribe",
                 "params": {"jobs": None, "progress_hz": 20, "prompts": True}}
    sock.sendall((json.dumps(hello) + "\n" + json.dumps(subscribe) + "\n").encode())
    return sock  # and never read from again


def test_a_client_that_never_reads_does_not_hold_up_a_transfer(agent_home: Path,  # noqa: F811
                                                               sshd, tmp_path: Path):
    served = tmp_path / "served" / "study"
    want = {f"IM{i:04}.dcm": write_random(served / f"IM{i:04}.dcm", 20_000, seed=i)
            for i in range(FILES)}
    SiteStore().add(sshd.site("lab", remote_dir=str(tmp_path / "served")))
    assert ferry("agent", "start").returncode == 0
    stuck = _stuck_client()
    try:
        out = tmp_path / "out"
        result = ferry("get", "-r", "lab:study", str(out) + "/", timeout=180)
        assert result.returncode == 0, result.stderr
        assert {p.name: sha256_of(p) for p in (out / "study").iterdir()} == want
        status = ferry("agent", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["clients"] >= 2, "the stuck client was lost"
        stuck.setblocking(False)
        got = stuck.recv(4096)
        assert got.startswith(b'{"type":"hello"'), "the agent never wrote to the stuck client"
    finally:
        stuck.close()
