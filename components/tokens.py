"""Tokens and text on screen, a shared view: token strips (coloured chips, escaped so no user or
model text becomes HTML), visible whitespace, axis labels, inline code spans, and Markdown
escaping for text streamed through st.write_stream."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import streamlit as st

from components.charts import ink_on, theme_type

# Colour-blind-friendly pastel cycle for telling neighbouring tokens apart.
PALETTE = ("#cfe2ff", "#ffe3b3", "#d3f9d8", "#ffd6e7", "#e5dbff", "#c5f6fa", "#fff3bf")


def visible(text: str) -> str:
    """Make whitespace and control characters visible: a token of spaces must not vanish."""
    out = []
    for ch in text:
        if ch == " ":
            out.append("·")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("⇥")
        elif ch in "\u200b\u200c\u200d\u2060\ufeff":
            out.append(f"⟨U+{ord(ch):04X}⟩")
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"⟨{ord(ch):02X}⟩")
        else:
            out.append(ch)
    return "".join(out) or "∅"


# Heat chips start from the page's own background at 0, so a neutral token is no white panel on
# the dark theme: (zero, full orange, full blue) per theme.
HEAT_ENDS = {
    "light": ((255, 255, 255), (255, 135, 55), (55, 135, 255)),
    "dark": ((52, 58, 64), (232, 89, 12), (76, 110, 245)),
}


def _heat(value: float, theme: str = "light") -> str:
    """A background for value in [-1, 1]: the theme's neutral at 0, towards orange (positive)
    or blue (negative)."""
    v = max(-1.0, min(1.0, float(value)))
    zero, pos, neg = HEAT_ENDS[theme]
    end = pos if v >= 0 else neg
    r, g, b = (round(z + (e - z) * abs(v)) for z, e in zip(zero, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def token_strip_html(
    tokens: Sequence[str],
    ids: Sequence[int] | None = None,
    values: Sequence[float] | None = None,
    titles: Sequence[str] | None = None,
    theme: str = "light",
) -> str:
    """HTML for a row of token chips. `values` in [-1, 1] colour by heat (from the `theme`'s
    neutral), else a pastel cycle; the text takes whichever ink reads on its chip."""
    chips = []
    for i, tok in enumerate(tokens):
        bg = _heat(values[i], theme) if values is not None else PALETTE[i % len(PALETTE)]
        ink = ink_on(bg)
        title = html.escape(titles[i], quote=True) if titles is not None else ""
        sub = (
            f"<span style='display:block;font-size:0.7em;opacity:0.7'>{int(ids[i])}</span>"
            if ids is not None
            else ""
        )
        chips.append(
            f"<span title='{title}' style='display:inline-block;margin:2px;padding:1px 4px;"
            f"border-radius:4px;background:{bg};color:{ink};font-family:monospace;"
            f"white-space:pre;text-align:center;line-height:1.25'>"
            f"{html.escape(visible(tok))}{sub}</span>"
        )
    return (
        "<div class='token-strip' style='line-height:2.2;direction:ltr'>"
        + "".join(chips)
        + "</div>"
    )


def token_strip(tokens: Sequence[str], **kwargs) -> None:
    st.html(token_strip_html(tokens, theme=theme_type(), **kwargs))


def token_labels(tokens: tuple[str, ...] | list[str]) -> list[str]:
    """Unique, readable axis labels: position and the token with its spaces made visible."""
    return [f"{i:>2} {visible(t)[:14]}" for i, t in enumerate(tokens)]


def short(token: str, width: int = 10) -> str:
    """A token made visible and cut to fit a chart cell."""
    v = visible(token)
    return v if len(v) <= width else v[: width - 1] + "…"


def code_span(token: str) -> str:
    """A token or typed text as inline code for st.markdown, closed against backticks."""
    return "`" + visible(token).replace("`", "ˋ") + "`"


def quoted(token: str) -> str:
    """A token in a sentence: in quotes as well as code, so a lone comma or a word reads as the
    token it is ("went on with “,”: you typed “upon”"), not as the sentence's punctuation."""
    return "“" + code_span(token) + "”"


def token_axis(tokens: tuple[str, ...], offset: int = 0) -> list[str]:
    """Unique axis labels: position and visible token ('3 ·fox')."""
    return [f"{i + offset} {short(t, 12)}" for i, t in enumerate(tokens)]


def percent(p: float) -> str:
    """A probability as a percentage, in scientific notation when it would print as 0.00 %."""
    return f"{p:.2%}" if p >= 5e-5 else f"{p:.1e}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|$<>~=:])")


def escape_markdown(text: str) -> str:
    """Model or user text shown through markdown (st.write_stream) stays literal text:
    no LaTeX from `$`, no links, no HTML."""
    return _MD_SPECIAL.sub(r"\\\1", text)
