"""The Share… dialog (recipients, expiry, download limit, password, notify) and its result.

:class:`ShareDialog` streams one local or remote file to the share service
(:class:`backend.shares.client.ShareClient`) in a worker with a progress bar: a remote file goes
from the SFTP session straight into the upload (``sftp_source``), never to local disk. Policy
errors (too many recipients, expiry over the cap, size...) come back from the service as one
line under the fields and the dialog stays open. On success it dismisses with the service's
answer (``{"share", "links", "password"}``) and :func:`share_file` shows
:class:`ShareResultDialog`: one link per recipient and the password, each copied with Enter
(``app.copy_to_clipboard``: OSC 52, works over SSH), and a terminal QR code of a link.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    OptionList,
    ProgressBar,
    Select,
    Static,
    TextArea,
)
from textual.widgets.option_list import Option

from backend.errors import FerryError
from backend.log import register_secret
from backend.remote import RemoteEntry
from backend.shares.client import CreatedJSON, ShareClient, local_file_source, sftp_source
from backend.shares.service import normalise_email
from backend.sites.model import local_user
from backend.units import human_size
from tui.dialogs.base import FerryDialog
from tui.dialogs.qr import qr_text
from tui.dialogs.text import plain
from tui.messages import ShareCreated

EXPIRY_CHOICES = [("1 day", "1d"), ("3 days", "3d"), ("7 days", "7d")]
DEFAULT_EXPIRY = "3d"
_SPLIT = re.compile(r"[\s,;]+")

SourceFactory = Callable[[], AsyncIterator[bytes]]


def parse_recipients(text: str) -> list[str]:
    """Comma-, semicolon- or line-separated e-mail addresses, normalised (ShareError if bad)."""
    return [normalise_email(part) for part in _SPLIT.split(text) if part.strip()]


def error_line(exc: FerryError) -> str:
    """An error and its hint on one line."""
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


class ShareDialog(FerryDialog[CreatedJSON | None]):
    """Ask how to share ``name`` and create the share; dismisses with the service's answer."""

    HELP_TITLE = "Share a file"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "share", "Share", id="ferry.share.create"),
    ]

    DEFAULT_CSS = """
    ShareDialog .share-where { color: $foreground-muted; height: auto; }
    ShareDialog .share-row { height: auto; width: 100%; margin-top: 1; }
    ShareDialog .share-row.tight { margin-top: 0; }
    ShareDialog .share-label { width: 16; height: 1; }
    ShareDialog .share-row > Input, ShareDialog .share-row > Select { width: 1fr; }
    ShareDialog #recipients { height: 3; width: 1fr; }
    ShareDialog .hint { padding: 0; }
    ShareDialog ProgressBar { display: none; margin-top: 1; }
    ShareDialog ProgressBar.-shown { display: block; }
    """

    def __init__(
        self,
        *,
        name: str,
        size: int,
        where: str,
        open_source: SourceFactory,
        client: Callable[[], ShareClient] = ShareClient,
    ) -> None:
        super().__init__()
        self.file_name = name
        self.file_size = size
        self.where = where
        self.open_source = open_source
        self.make_client = client
        self.sent = 0

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text.assemble("Share ", plain(self.file_name)), classes="dialog-title")
            yield Static(
                Text.assemble(plain(self.where), f"  ({human_size(self.file_size, compact=True)})"),
                classes="share-where",
            )
            with Horizontal(classes="share-row"):
                yield Static("Recipients", classes="share-label")
                yield TextArea("", id="recipients", compact=True, soft_wrap=True,
                               placeholder="e-mail addresses, comma or line separated")
            with Horizontal(classes="share-row"):
                yield Static("Expires after", classes="share-label")
                yield Select(EXPIRY_CHOICES, value=DEFAULT_EXPIRY, allow_blank=False,
                             compact=True, id="expires")
            with Horizontal(classes="share-row tight"):
                yield Static("Downloads/link", classes="share-label")
                yield Input("0", type="integer", compact=True, id="limit",
                            placeholder="0 = no limit")
            with Horizontal(classes="share-row tight"):
                yield Static("Password", classes="share-label")
                yield Input("", password=True, compact=True, id="password",
                            placeholder="empty: generate one")
            with Horizontal(classes="share-row tight"):
                yield Static("", classes="share-label")
                yield Checkbox("E-mail me on each download", compact=True, id="notify")
            yield Static("ctrl+s shares · Esc cancels · Downloads/link 0 = no limit",
                         classes="hint")
            yield Static("", id="error", classes="field-error")
            yield ProgressBar(total=max(self.file_size, 1), show_eta=False, id="progress")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Share", id="share", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#recipients", TextArea).focus()

    # ------------------------------------------------------------------ input

    def options(self) -> dict[str, Any]:
        """The share options typed so far (raises FerryError with a one-line message)."""
        from backend.errors import UsageError

        recipients = parse_recipients(self.query_one("#recipients", TextArea).text)
        limit_text = self.query_one("#limit", Input).value.strip() or "0"
        if not limit_text.isdigit():
            raise UsageError("the download limit is a whole number (0 = no limit)")
        password = self.query_one("#password", Input).value
        expires = self.query_one("#expires", Select).value
        options: dict[str, Any] = {
            "name": self.file_name,
            "size": self.file_size,
            "recipients": recipients,
            "expires": str(expires) if expires != Select.BLANK else DEFAULT_EXPIRY,
            "max_downloads": int(limit_text),
            "notify": self.query_one("#notify", Checkbox).value,
            "sender": local_user(),
        }
        if password:
            register_secret(password)
            options["password"] = password
        else:
            options["generate_password"] = True
        return options

    def show_error(self, text: str) -> None:
        self.query_one("#error", Static).update(plain(text))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "share":
            self.start()
        else:
            self.dismiss(None)

    def action_share(self) -> None:
        self.start()

    def start(self) -> None:
        if self.query_one("#share", Button).disabled:
            return
        try:
            options = self.options()
        except FerryError as exc:
            self.show_error(error_line(exc))
            return
        self.show_error("")
        if options["recipients"]:
            self._create(options)
            return
        # no recipient: one anonymous link; never made without asking (issue 14)
        from tui.dialogs.confirm import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if yes:
                self._create(options)
            else:
                self.query_one("#recipients", TextArea).focus()

        self.app.push_screen(ConfirmDialog(
            "No recipients: create one anonymous link?",
            [f"Anyone who has the link and the password can download {self.file_name}; "
             "no e-mail address is tied to it.",
             "Cancel goes back to the form to add recipients."],
            confirm_label="Create link",
        ), callback=answered)

    # ------------------------------------------------------------------ upload

    async def _counted(self) -> AsyncIterator[bytes]:
        bar = self.query_one("#progress", ProgressBar)
        async for chunk in self.open_source():
            self.sent += len(chunk)
            bar.update(progress=self.sent)
            yield chunk

    @work(exclusive=True, group="share-create", exit_on_error=False)
    async def _create(self, options: dict[str, Any]) -> None:
        button = self.query_one("#share", Button)
        bar = self.query_one("#progress", ProgressBar)
        button.disabled = True
        self.sent = 0
        bar.update(progress=0)
        bar.add_class("-shown")
        try:
            result = await self.make_client().create(self._counted(), **options)
        except FerryError as exc:
            self.show_error(error_line(exc))
            return
        except OSError as exc:
            self.show_error(f"cannot read {self.where}: {exc.strerror or exc}")
            return
        finally:
            button.disabled = False
            bar.remove_class("-shown")
        if result.get("password"):
            register_secret(str(result["password"]))
        self.dismiss(result)


class ShareResultDialog(FerryDialog[None]):
    """One link per recipient and the password; Enter or c copies, r shows a QR code."""

    HELP_TITLE = "Share links"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy", id="ferry.share.copy"),
        Binding("r", "qr", "QR code", id="ferry.share.qr"),
    ]
    DEFAULT_CSS = """
    ShareResultDialog OptionList { height: auto; max-height: 13; }
    ShareResultDialog .hint { padding: 0; }
    ShareResultDialog #copied { height: auto; color: $success; }
    """

    def __init__(self, result: CreatedJSON) -> None:
        super().__init__()
        self.result = result
        self.items: list[tuple[str, str]] = []  # (what, text to copy)
        for link in result.get("links", []):
            who = link.get("email") or "anyone with the link and the password"
            self.items.append((str(who), str(link["url"])))
        if result.get("password"):
            self.items.append(("password", str(result["password"])))

    def compose(self) -> ComposeResult:
        share = self.result.get("share", {})
        expires = str(share.get("expires_at", ""))[:16].replace("T", " ")
        with Vertical(classes="dialog"):
            yield Static(
                Text.assemble("Shared ", plain(str(share.get("name", ""))),
                              f" — expires {expires} UTC"),
                classes="dialog-title",
            )
            options = []
            for i, (what, value) in enumerate(self.items):
                if what == "password":
                    prompt = Text.assemble(("Password  ", "bold"), plain(value))
                else:
                    prompt = Text.assemble(plain(what, "bold"), "\n", plain(value))
                # never wrapped (the dialog widens to fit): a mouse selection copies it whole
                prompt.no_wrap, prompt.overflow = True, "ignore"
                options.append(Option(prompt, id=str(i)))
            yield OptionList(*options, id="links")
            yield Static("", id="copied")
            yield Static("Enter/c copy · r QR code of a link · Esc close. The password is "
                         "shown only now: send it by another channel than the link.",
                         classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy", id="copy")
                yield Button("QR code", id="qr")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        from tui.dialogs.message import fit_width

        longest = max((cell_len(value) for _what, value in self.items), default=0)
        self.query_one(".dialog").styles.width = fit_width(longest + 4)  # the list's padding
        self.query_one("#links", OptionList).focus()

    def highlighted(self) -> tuple[str, str] | None:
        index = self.query_one("#links", OptionList).highlighted
        if index is None or not 0 <= index < len(self.items):
            return None
        return self.items[index]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_copy()

    def action_copy(self) -> None:
        item = self.highlighted()
        if item is None:
            return
        what, value = item
        self.app.copy_to_clipboard(value)
        label = "password" if what == "password" else f"link for {what}"
        # in the dialog: notifications wait until it closes (docs/tui.md, "Notifications")
        self.query_one("#copied", Static).update(plain(
            f"Copied the {label} to the clipboard (if your terminal allows OSC 52; else "
            "select its line)."))

    def action_qr(self) -> None:
        item = self.highlighted()
        if item is None or item[0] == "password":
            links = [i for i in self.items if i[0] != "password"]
            if not links:
                return
            item = links[0]
        self.app.push_screen(QrDialog(item[1], item[0]))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        elif event.button.id == "qr":
            self.action_qr()
        else:
            self.dismiss(None)


class QrDialog(FerryDialog[None]):
    """A link as a terminal QR code (dark on light whatever the theme); any key closes."""

    DEFAULT_CSS = """
    QrDialog > .dialog { width: auto; padding: 0 1; }
    QrDialog .dialog-title { margin-bottom: 0; }
    QrDialog #qr { width: auto; height: auto; }
    """

    def __init__(self, url: str, label: str) -> None:
        super().__init__()
        self.url = url
        self.label = label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text.assemble("QR code: ", plain(self.label)), classes="dialog-title")
            yield Static(qr_text(self.url), id="qr")

    def on_key(self, event: Any) -> None:
        event.stop()
        self.dismiss(None)


def share_file(app: App[Any], source: Any, path: str, entry: RemoteEntry) -> None:
    """Open the Share… dialog on a browser entry (``source`` is the pane's Source)."""
    if entry.kind != "file":
        app.notify("only a regular file can be shared", severity="warning")
        return
    if source.is_remote:
        sftp = source.sftp

        def open_source() -> AsyncIterator[bytes]:
            return sftp_source(sftp, path)
    else:

        def open_source() -> AsyncIterator[bytes]:
            return local_file_source(Path(path))

    def done(result: CreatedJSON | None) -> None:
        if result:
            app.push_screen(ShareResultDialog(result))
            app.post_message(ShareCreated())  # the app refreshes the Shares screens

    dialog = ShareDialog(
        name=entry.name, size=entry.size, where=f"{source.label}:{path}", open_source=open_source
    )
    app.push_screen(dialog, callback=done)
