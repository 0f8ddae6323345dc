"""The recipient's HTML pages: no JavaScript, no external assets, every value HTML-escaped.

:func:`render` escapes every substituted value (file names and messages are user data); the
only CSS is one fixed ``<style>`` block whose SHA-256 goes into the Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import html
from string import Template

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;"
    "color:#1b1b1b;background:#fafafa}h1{font-size:1.4em}.box{background:#fff;"
    "border:1px solid #ccc;border-radius:6px;padding:1.2em}.err{color:#a40000}"
    "label{display:block;margin:.8em 0 .3em}input[type=password]{width:100%;padding:.5em;"
    "box-sizing:border-box}button{margin-top:1em;padding:.6em 1.4em}.muted{color:#555;"
    "font-size:.9em}.name{word-break:break-all;font-weight:bold}"
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; img-src 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_LAYOUT = Template(
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<meta name=\"robots\" content=\"noindex\">"
    f"<title>$title</title><style>{STYLE}</style></head>"
    "<body><main class=\"box\">$body</main>"
    "<p class=\"muted\">Sent with Ferry. Files are stored encrypted and deleted when the link "
    "expires.</p></body></html>"
)


class Safe(str):
    """Already-escaped HTML that :func:`render` inserts verbatim."""


def render(template: str, **values: object) -> str:
    escaped = {
        k: v if isinstance(v, Safe) else html.escape(str(v), quote=True)
        for k, v in values.items()
    }
    return Template(template).substitute(escaped)


def page(title: str, body: Safe) -> str:
    return render(_LAYOUT.template, title=title, body=body)


def download_page(*, name: str, size: str, expires: str, message: str, password: bool,
                  error: str = "", action: str) -> str:
    parts = [
        render("<h1>A file has been shared with you</h1>"
               "<p class=\"name\">$name</p><p class=\"muted\">$size &middot; available until "
               "$expires UTC</p>", name=name, size=size, expires=expires),
    ]
    if message:
        parts.append(render("<p>Message from the sender:</p><blockquote>$m</blockquote>",
                            m=message))
    if error:
        parts.append(render("<p class=\"err\" role=\"alert\">$e</p>", e=error))
    field = (
        "<label for=\"pw\">Password</label>"
        "<input id=\"pw\" name=\"password\" type=\"password\" autocomplete=\"off\" required "
        "autofocus>" if password else ""
    )
    parts.append(render(
        "<form method=\"post\" action=\"$action\"><input type=\"hidden\" name=\"browser\" "
        "value=\"1\">$field<button type=\"submit\">Download</button></form>",
        action=action, field=Safe(field),
    ))
    return page("Download a shared file", Safe("".join(parts)))


def message_page(title: str, text: str) -> str:
    return page(title, Safe(render("<h1>$t</h1><p>$x</p>", t=title, x=text)))
