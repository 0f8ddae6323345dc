"""The Ferry agent: one background process per user and ``FERRY_HOME`` that owns the transfer
engine and its journal, so a queued transfer finishes when the terminal that started it goes
away (docs/agent.md).

* :mod:`backend.agent.location` — where its socket, lock, pid file and log live;
* :mod:`backend.agent.protocol` — the versioned JSON-lines protocol on the socket;
* :mod:`backend.agent.server` — the agent itself (``python -m backend.agent run``);
* :mod:`backend.agent.client` — connecting to it, starting it on first need, stopping it;
* :mod:`backend.agent.unit` — the systemd user unit.

The TUI and the ``ferry`` command are clients (tui/cli/agent_client.py); the agent builds its
engine through the same wiring they use in-process (backend/session.py).
"""
