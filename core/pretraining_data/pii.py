"""Personal data masked with regular expressions: e-mail addresses, phone numbers, IPv4."""

from __future__ import annotations

import re

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digit groups split by spaces or hyphens, optionally +country and (area): phone-
# shaped when it holds 7 or more digits (checked in mask_pii).
PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?)?\d{2,6}(?:[ -]\d{2,6}){1,4}"
    r"(?!\w)(?!\.\d)"
)
MIN_PHONE_DIGITS = 7
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def mask_pii(text: str) -> tuple[str, int]:
    """E-mail addresses, phone numbers and IPv4 addresses replaced by placeholders."""
    count = 0
    for pattern, tag in ((EMAIL, "[EMAIL]"), (IPV4, "[IP]")):
        text, n = pattern.subn(tag, text)
        count += n
    found = 0

    def phone(m: re.Match) -> str:
        nonlocal found
        if sum(c.isdigit() for c in m.group()) < MIN_PHONE_DIGITS:
            return m.group()
        found += 1
        return "[PHONE]"

    text = PHONE.sub(phone, text)
    return text, count + found
