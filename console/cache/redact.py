"""PII and secret redaction applied at ingest to every span string attribute and event text.

One combined regular expression (built-ins in the priority secret, card, ssn, email, ip,
phone, then user rules) runs through a single `sub`; Luhn, octet, phone-length and IPv6 checks
happen in the replacement function. A cheap trigger search skips strings that cannot match,
and a bounded cache serves the short values that repeat across spans. No Textual import.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from console.config import RedactionSettings

__all__ = ["BUILTIN_DETECTORS", "CACHE_MAX_ENTRIES", "RedactionRuleError", "Redactor"]

CACHE_MAX_ENTRIES = 65_536
"""The result cache is cleared when it holds this many entries."""
CACHE_MAX_LEN = 256
"""Only strings shorter than this are cached."""


class RedactionRuleError(ValueError):
    """A redaction setting, usually a user rule's pattern, that cannot be used."""


# Every built-in match starts a word: it follows a consumed "lead" character that is not an
# ASCII letter or digit (a JSON escape such as `\n` or `\u0022` counts as one), so `a\nsk-...`
# is caught. Without user rules a space is prepended so that the pattern starts with a character
# class, which lets the engine skip ahead in C; user rules need `\A` instead (their `^` works).
_ESCAPE = r"(?:(?<=\\)(?:[nrt]|u[0-9A-Fa-f]{4}))?"
_LEAD = rf"(?P<_lead>[^A-Za-z0-9]{_ESCAPE})"
_LEAD_AT_START = rf"(?P<_lead>\A|[^A-Za-z0-9]{_ESCAPE})"
# Each piece below begins with a literal or a character class so that the regex engine can
# skip it with one character test; per-piece lookbehinds therefore come after that character.
_KEY_NAMES = (
    r"(?:[Aa](?i:pi[_-]?key|ccess[_-]?token|uth[_-]?token|uthorization)|[Xx](?i:-api[_-]?key)"
    r"|[Cc](?i:lient[_-]?secret)|[Rr](?i:efresh[_-]?token)|[Ii](?i:d[_-]?token)"
    r"|[Pp](?i:assword|asswd|rivate[_-]?key|roxy-authorization)"
    r"|[Ss](?i:ecret(?:[_-]?access)?[_-]?key|ession[_-]?token)"
    r"|[Tt](?<![_.-].)(?i:oken)|[Ss](?<![_.-].)(?i:ecret))"
)
_SECRET_VALUE = r"""(?!\[[A-Z_]+\])[^\s"'&,;\\]+"""
_SECRET = (  # (kind, regex); `kv`, `bearer` and `uc` keep their prefix, replace only the value
    ("kv", rf"""{_KEY_NAMES}\\?["']?\s*[:=](?!\s*\[[A-Z_]+\])[\s\\\["']*+"""
     rf"(?:(?i:bearer|basic|token|digest)\s+)?+(?P<_kvv>{_SECRET_VALUE})"),
    ("bearer", rf"(?:[Bb]earer|BEARER)\s+(?P<_bv>{_SECRET_VALUE})"),
    ("uc", r"//(?<=://)[^/\s:@]+:(?P<_ucv>[^/\s@]+)@"),
    ("sec", r"sk-(?:(?:ant|proj|admin|svcacct|or-v1|lf)-[A-Za-z0-9_-]{8,}|[A-Za-z0-9_-]{20,})"),
    ("sec", r"pk-lf-[A-Za-z0-9_-]{8,}"),
    ("sec", r"g(?:h[pousr]_[A-Za-z0-9]{30,}|ithub_pat_[A-Za-z0-9_]{30,})"),
    ("sec", r"xox[abprs]-[A-Za-z0-9-]{10,}"),
    ("sec", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("sec", r"A(?:[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])|Iza[A-Za-z0-9_-]{35,})"),
    ("sec", r"----(?:-)?BEGIN[A-Z ]*PRIVATE KEY-----(?s:.*?)"
     r"(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)"),
)
_CARD = (  # 13-19 digits, plain or grouped with one consistent separator; issuer + Luhn later
    ("card", r"[2-6](?<!\..)(?:[0-9]{12,18}"
     r"|[0-9]{3}(?P<_c1>[ -])[0-9]{4}(?:(?P=_c1)[0-9]{4}){1,2}(?:(?P=_c1)[0-9]{1,3})?"
     r"|[0-9]{3}(?P<_c2>[ -])[0-9]{6}(?P=_c2)[0-9]{4,5})(?![0-9A-Za-z]|\.[0-9])"),
)
_SSN = (("ssn", r"[0-8](?<!-.)[0-9]{2}(?<!000)(?<!666)-(?!00)[0-9]{2}-(?!0000)[0-9]{4}"
         r"(?![0-9]|-[0-9])"),)
_LOCAL = r"[A-Za-z0-9_.%+\x80-\U0010ffff-]"  # non-ASCII chars are leads, so part of the name
_EMAIL = (("email", rf"{_LOCAL}(?<!{_LOCAL}.){_LOCAL}*+@"  # the name starts where its run does
           r"[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])"),)
_IP = (  # octets are range-checked later; the IPv6 candidate is loose and `_ip6_ok` decides
    ("ip4", r"[0-9](?<!\..)[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![0-9A-Za-z]|\.[0-9])"),
    ("ip6", r"[0-9A-Fa-f:](?<![.:]:)(?<!\..)"
     r"(?=[0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}:|(?<=:)[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{1,38}"
     r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z:]|\.[0-9])"),
)
_NANP_TAIL = r"[2-9][0-9]{2}[ .-][0-9]{4}(?![0-9A-Za-z]|[.-][0-9])"
_PHONE = (  # `+<country> ...` (digit count checked later) or North-American 3-3-4
    ("phone+", r"\+(?<!\+\+)[1-9](?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,4})){1,7}+(?![0-9])"),
    ("phone", rf"\((?<![+.-]\()[2-9][0-9]{{2}}\) ?{_NANP_TAIL}"),
    ("phone", r"[1-9](?<![+.-].)(?:(?<=1)[ .-](?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])"
     rf"|(?<=[2-9])[0-9]{{2}}[ .-]){_NANP_TAIL}"),
)
BUILTIN_DETECTORS: dict[str, tuple[tuple[str, str], ...]] = {
    "secret": _SECRET, "card": _CARD, "ssn": _SSN, "email": _EMAIL, "ip": _IP, "phone": _PHONE,
}
"""Built-in detector name to its (kind, regex) pieces, in priority order."""
_PLACEHOLDERS = {
    "kv": "[SECRET]", "bearer": "[SECRET]", "uc": "[SECRET]", "sec": "[SECRET]", "card": "[CARD]",
    "ssn": "[SSN]", "email": "[EMAIL]", "ip4": "[IP]", "ip6": "[IP]", "phone+": "[PHONE]",
    "phone": "[PHONE]",
}
_VALUE_GROUPS = {"kv": "_kvv", "bearer": "_bv", "uc": "_ucv"}
# Pieces that cannot match without ':' or '=' (bit 1) or '@' (bit 2) in the string are left out
# of the regex used for strings lacking them: `key: value` names are the costliest piece.
_NEEDS = {"kv": 1, "ip6": 1, "uc": 3, "email": 2}

# Every built-in match contains one of these: >= 4 ASCII digits, '@', ':', '=', or a prefix.
# All alternatives begin with a literal, so the engine scans for their first characters in C.
_TRIGGER = re.compile(
    "|".join(f"{d}[^0-9]*+[0-9][^0-9]*+[0-9][^0-9]*+[0-9]" for d in "0123456789")
    + r"|@|:|=|k(?<=[sp]k)-|AKIA|ASIA|AIza|_(?<=gh[pousr]_)|_(?<=github_pat_)|xox[abprs]-"
    r"|J(?<=eyJ)|Bearer|bearer|BEARER|G(?<=----BEG)IN"
)
_DECIMAL = re.compile(r"\+[0-9]+\.[0-9]+")
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")


def _luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(text: str) -> bool:
    """Whether a card candidate has 13-19 digits, an issuer prefix (2221-2720, 3-6) and Luhn."""
    digits = text.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19:
        return False
    issuer = digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720
    return issuer and _luhn_ok(digits)


def _phone_ok(text: str) -> bool:
    """Whether a `+` phone candidate has 8-15 digits and is not a signed decimal (`+3.14159`)."""
    n = sum(ch.isdigit() for ch in text)
    return 8 <= n <= 15 and _DECIMAL.fullmatch(text) is None


def _ip4_ok(text: str) -> bool:
    """Whether every octet of a dotted-quad candidate is at most 255."""
    return all(int(octet) <= 255 for octet in text.split("."))


def _ip6_ok(text: str) -> bool:
    """Whether an IPv6 candidate is a real address, not a time, slice (`1::2`) or C++ scope."""
    if "::" not in text and text.count(":") < 6:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    if not any(ch.isdigit() for ch in text):
        return False
    return "::" not in text or text.startswith("::") or len(text.split(":", 1)[0]) >= 3


_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "card": _card_ok, "phone+": _phone_ok, "ip4": _ip4_ok, "ip6": _ip6_ok,
}


def _user_piece(index: int, name: str, pattern: str) -> str:
    """Check one user rule's pattern and return it ready to embed in the combined regex."""
    where = f'redaction.rules[{index}] ("{name}")'
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise RedactionRuleError(f"{where}: bad pattern: {exc}") from exc
    if compiled.fullmatch("") is not None:
        raise RedactionRuleError(f"{where}: bad pattern: it matches the empty string")
    if _NUMBERED_BACKREF.search(pattern):
        raise RedactionRuleError(
            f"{where}: bad pattern: numbered backreferences are not supported; "
            "use (?P<name>...) and (?P=name)"
        )
    flags = _LEADING_FLAGS.match(pattern)  # global flags must become scoped once embedded
    if flags:  # (a verbose pattern may end in a comment: close the group on a new line)
        end = "\n)" if "x" in flags.group(1) else ")"
        return f"(?{flags.group(1)}:{pattern[flags.end():]}{end}"
    return f"(?:{pattern})"


class Redactor:
    """Replaces PII and secrets in span strings with typed placeholders, per the settings."""

    def __init__(self, settings: RedactionSettings) -> None:
        """Compile the combined regex for the enabled detectors and user rules, or raise."""
        self.enabled = settings.enabled
        unknown = sorted(set(settings.builtin) - BUILTIN_DETECTORS.keys())
        if unknown:
            raise RedactionRuleError(f"redaction.builtin: unknown detector(s) {unknown}")
        # Each alternative ends with an empty marker group `_<n>`: `m.lastgroup` names it, and
        # the alternative still starts with a character the engine can test cheaply.
        self._kinds: dict[str, tuple[str, Callable[[str], bool] | None, str | None, bool]] = {}
        builtin: list[tuple[int, str]] = []
        user: list[str] = []
        for name, pieces in BUILTIN_DETECTORS.items():
            if name not in settings.builtin:
                continue
            for kind, regex in pieces:
                marker = f"_{len(self._kinds)}"
                self._kinds[marker] = (
                    _PLACEHOLDERS[kind], _VALIDATORS.get(kind), _VALUE_GROUPS.get(kind), True
                )
                builtin.append((_NEEDS.get(kind, 0), f"{regex}(?P<{marker}>)"))
        for i, rule in enumerate(settings.rules):
            marker = f"_{len(self._kinds)}"
            self._kinds[marker] = (rule.placeholder, None, None, False)
            user.append(f"{_user_piece(i, rule.name, rule.pattern)}(?P<{marker}>)")
        self._prepend = bool(builtin) and not user
        self._fast_path = self._prepend  # user patterns are arbitrary: no sound trigger for them
        lead = _LEAD if self._prepend else _LEAD_AT_START
        self._patterns: list[re.Pattern[str] | None] = []
        for present in range(4):  # one regex per combination of ':'/'=' and '@' presence
            wanted = [regex for needs, regex in builtin if needs & present == needs]
            alternatives = ([f"{lead}(?:{'|'.join(wanted)})"] if wanted else []) + user
            try:
                self._patterns.append(re.compile("|".join(alternatives)) if alternatives else None)
            except re.error as exc:  # e.g. a user group name clashing with another rule's
                raise RedactionRuleError(f"redaction.rules: patterns conflict: {exc}") from exc
        self._cache: dict[str, tuple[str, int]] = {}

    @property
    def memo(self) -> dict[str, tuple[str, int]]:
        """The result cache, for hot loops: a hit equals what `redact` returns; on a miss call it."""
        return self._cache

    def redact(self, text: str) -> tuple[str, int]:
        """Return the text with every match replaced by a typed placeholder, and the number of replacements."""  # noqa: E501
        if not self.enabled or not text:
            return text, 0
        cache = self._cache
        hit = cache.get(text)
        if hit is not None:
            return hit
        if self._fast_path and _TRIGGER.search(text) is None:
            result = (text, 0)
        else:
            present = (1 if ":" in text or "=" in text else 0) | (2 if "@" in text else 0)
            pattern = self._patterns[present]
            result = (text, 0) if pattern is None else self._redact(pattern, text)
        if len(text) < CACHE_MAX_LEN:
            if len(cache) >= CACHE_MAX_ENTRIES:
                cache.clear()
            cache[text] = result
        return result

    def _redact(self, pattern: re.Pattern[str], text: str) -> tuple[str, int]:
        """Run the combined regex once, validating candidates and counting replacements."""
        count = 0
        kinds = self._kinds

        def replace(m: re.Match[str]) -> str:
            nonlocal count
            placeholder, check, value, led = kinds[m.lastgroup or ""]
            whole = m.group()
            start = m.start()
            cut = m.end("_lead") - start if led else 0
            if check is not None and not check(whole[cut:]):
                return whole
            count += 1
            if value is None:
                return whole[:cut] + placeholder
            return whole[: m.start(value) - start] + placeholder + whole[m.end(value) - start :]

        if self._prepend:
            return pattern.sub(replace, " " + text)[1:], count
        return pattern.sub(replace, text), count
