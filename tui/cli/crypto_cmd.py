"""``ferry encrypt`` and ``ferry decrypt``: files to and from Ferry's AES-256 container.

The secret comes from ``--passphrase-file F`` (first line; ``-`` = stdin), ``--key-file F``
(32 bytes, ``ferry keygen --symmetric``) or a no-echo prompt (twice when encrypting). Output
goes through a temporary file renamed into place, never over an existing file without
``--force``; the path written is printed on stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypedDict

from backend.crypto.container import decrypt_file, encrypt_file, read_info
from backend.crypto.keys import read_key_file
from backend.errors import RemoteNotFoundError, UsageError
from backend.log import register_secret
from backend.names import display_name, is_safe_name, validate_name
from tui.cli.output import ask_secret, read_secret_file

SUFFIX = ".ferry"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encrypt", help="encrypt a file with AES-256 (writes FILE.ferry)",
        description="Encrypt FILE into Ferry's AES-256 container (docs/format.md).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: FILE.ferry)")
    _secret_options(p)
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--no-name", action="store_true",
                   help="do not record FILE's name in the (unencrypted) header")
    p.set_defaults(func=cmd_encrypt)

    p = sub.add_parser(
        "decrypt", help="decrypt a .ferry file (verifies every byte first)",
        description="Decrypt FILE; nothing is written unless the whole file verifies.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: FILE without .ferry, else the stored name)")
    _secret_options(p)
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=cmd_decrypt)


def _secret_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--passphrase-file", metavar="F",
                       help="read the passphrase from the first line of F ('-' = stdin)")
    group.add_argument("--key-file", metavar="F",
                       help="use a 32-byte key file (see 'ferry keygen --symmetric')")


class _Secret(TypedDict, total=False):
    """The one secret a container is opened with: a raw key or a passphrase."""

    key: bytes
    passphrase: str


def _secret(args: argparse.Namespace, *, confirm: bool) -> _Secret:
    if args.key_file:
        return {"key": read_key_file(Path(args.key_file).expanduser())}
    if args.passphrase_file:
        passphrase = read_secret_file(args.passphrase_file)
    else:
        passphrase = ask_secret("Passphrase: ")
        if not passphrase:
            raise UsageError("the passphrase is empty")
        if confirm and ask_secret("Repeat passphrase: ") != passphrase:
            raise UsageError("the two passphrases do not match")
    register_secret(passphrase)
    return {"passphrase": passphrase}


def _refuse_existing(out: Path, force: bool) -> None:
    if not force and (out.exists() or out.is_symlink()):
        raise UsageError(f"{display_name(str(out))} already exists",
                         hint="pass --force to overwrite it, or -o another name")


def cmd_encrypt(args: argparse.Namespace) -> int:
    src = Path(args.file).expanduser()
    out = Path(args.output).expanduser() if args.output else src.with_name(src.name + SUFFIX)
    _refuse_existing(out, args.force)
    name = None if args.no_name or not is_safe_name(src.name) else src.name
    if not src.exists():  # say so before prompting for a passphrase
        raise RemoteNotFoundError(f"{display_name(str(src))} does not exist")
    if src.is_dir():
        raise UsageError(f"{display_name(str(src))} is a folder, not a file")
    secret = _secret(args, confirm=True)
    encrypt_file(src, out, name=name, overwrite=args.force, **secret)
    print(display_name(str(out)))
    return 0


def _default_output(src: Path, stored_name: str | None) -> Path:
    if src.name.lower().endswith(SUFFIX) and len(src.name) > len(SUFFIX):
        return src.with_name(src.name[: -len(SUFFIX)])
    if stored_name is not None:
        return src.parent / validate_name(stored_name)
    raise UsageError(f"cannot tell what to call the output of {display_name(str(src))}",
                     hint="pass -o OUT")


def cmd_decrypt(args: argparse.Namespace) -> int:
    src = Path(args.file).expanduser()
    info = read_info(src)  # unauthenticated: only to pick the output name and the secret
    out = Path(args.output).expanduser() if args.output else _default_output(src, info.name)
    _refuse_existing(out, args.force)
    if not args.key_file and not args.passphrase_file and info.key_source == "key":
        raise UsageError(f"{display_name(str(src))} was encrypted with a key file",
                         hint="pass --key-file F")
    secret = _secret(args, confirm=False)
    decrypt_file(src, out, overwrite=args.force, **secret)
    print(display_name(str(out)))
    return 0
