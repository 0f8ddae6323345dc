"""Expiring, password-protected, per-recipient file shares served by Ferry's own web service.

Modules: ``policy`` (defaults and hard caps from share-policy.toml), ``model`` (Share and
Recipient records), ``store`` (metadata store interface + SQLite), ``blobs`` (encrypted blob
store interface + folder), ``keys`` (server key: wraps per-share keys, signs tickets),
``tokens`` (link tokens, ids and passwords), ``ratelimit`` (wrong-password lockouts), ``service``
(the operations: create, download, revoke, extend, purge), ``notify`` (SMTP e-mails),
``pages`` (recipient HTML), ``web`` (aiohttp app: recipient pages + admin API), ``server``
(start/stop the service, TLS) and ``client`` (admin API client used by the CLI and TUI).
"""
