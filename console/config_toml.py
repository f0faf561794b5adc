"""Reading the TOML config file, and finding the line each key path sits on.

`read_toml` returns the file's text and table, or the one problem that stops it
being read. `TomlLines` maps key paths such as `("sources", "prometheus", 0, "url")`
to line numbers, so a validation error can be reported as `<file>:<line>`.
"""

from __future__ import annotations

import bisect
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from console.config_errors import ConfigProblem, Loc

# ---------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------


def read_toml(
    file: Path, explicit: bool
) -> tuple[str | None, dict[str, Any] | None, ConfigProblem | None]:
    """The file's text (None when absent) and parsed table, or the problem reading it.

    A missing file is a problem only when it was named `explicit`ly; otherwise the
    table is empty and defaults apply.
    """
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if not explicit:
            return None, {}, None
        return None, None, ConfigProblem(str(file), "", "config file not found")
    except IsADirectoryError:
        return None, None, ConfigProblem(
            str(file), "", f"is a directory, not a config file (name the file itself, for example"
            f" {file / 'config.toml'})")
    except NotADirectoryError:
        blocker = next((p for p in file.parents if p.is_file()), file.parent)
        return None, None, ConfigProblem(
            str(file), "", f"cannot read: {blocker} is a file, not a directory")
    except UnicodeDecodeError as exc:
        return None, None, ConfigProblem(str(file), "", f"not UTF-8 text ({exc.reason})")
    except OSError as exc:
        return None, None, ConfigProblem(str(file), "", f"cannot read: {exc.strerror}")
    try:
        return text, tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        line, message = _toml_error(exc, text)
        return text, None, ConfigProblem(f"{file}:{line}", "", message)


def _toml_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    message = str(exc)
    at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if at:
        return int(at[1]), f"invalid TOML: {message[: at.start()]} (column {at[2]})"
    end = re.search(r"\s*\(at end of document\)$", message)
    if end:
        return text.count("\n") + 1, f"invalid TOML: {message[: end.start()]} (at end of file)"
    return 1, f"invalid TOML: {message}"


# ---------------------------------------------------------------------------
# Locating a key path in TOML text
# ---------------------------------------------------------------------------


class TomlLines:
    """Line numbers of key paths in TOML text that tomllib already accepted (best effort).

    Tracks `[table]` and `[[array]]` headers (counting array elements), `key =` lines
    with dotted and quoted keys, and arrays and inline tables inside values.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self._arrays: dict[Loc, int] = {}
        self.lines: dict[Loc, int] = {}
        try:
            self._document()
        except (IndexError, ValueError):
            pass  # keep what was found so far

    def line_of(self, loc: Loc) -> int | None:
        """Line of `loc`, else of its nearest enclosing key or table found."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None

    def _record(self, loc: Loc, at: int) -> None:
        line = bisect.bisect_left(self._newlines, at) + 1
        for end in range(1, len(loc) + 1):
            self.lines.setdefault(loc[:end], line)

    def _document(self) -> None:
        table: Loc = ()
        text = self._text
        while True:
            self._skip(newlines=True)
            if self._pos >= len(text):
                return
            start = self._pos
            if text.startswith("[[", self._pos):
                self._pos += 2
                keys = self._keys()
                self._expect("]]")
                parent = self._resolve(keys[:-1])
                array = (*parent, keys[-1])
                index = self._arrays.get(array, 0)
                self._arrays[array] = index + 1
                table = (*array, index)
                self._record(table, start)
            elif text[self._pos] == "[":
                self._pos += 1
                table = self._resolve(self._keys())
                self._expect("]")
                self._record(table, start)
            else:
                self._pair(table)
            if self._pos <= start:
                raise ValueError("no progress")

    def _resolve(self, keys: list[str]) -> Loc:
        loc: Loc = ()
        for key in keys:
            loc = (*loc, key)
            count = self._arrays.get(loc)
            if count is not None:
                loc = (*loc, count - 1)
        return loc

    def _pair(self, table: Loc) -> None:
        start = self._pos
        loc = (*table, *self._keys())
        self._expect("=")
        self._record(loc, start)
        self._value(loc)

    def _value(self, loc: Loc) -> None:
        self._skip(newlines=False)
        text = self._text
        for quote in ('"""', "'''"):
            if text.startswith(quote, self._pos):
                end = self._pos + 3
                while not text.startswith(quote, end) or (quote == '"""' and _escaped(text, end)):
                    end += 1
                    if end >= len(text):
                        raise ValueError("unterminated string")
                self._pos = end + 3
                while self._pos < len(text) and text[self._pos] == quote[0]:
                    self._pos += 1
                return
        char = text[self._pos]
        if char in "\"'":
            self._string()
        elif char == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if text[self._pos] == "]":
                    self._pos += 1
                    return
                self._record((*loc, index), self._pos)
                self._value((*loc, index))
                self._skip(newlines=True)
                if text[self._pos] == ",":
                    self._pos += 1
                    index += 1
        elif char == "{":
            self._pos += 1
            while True:
                self._skip(newlines=True)
                if text[self._pos] == "}":
                    self._pos += 1
                    return
                self._pair(loc)
                self._skip(newlines=True)
                if text[self._pos] == ",":
                    self._pos += 1
        else:
            match = re.compile(r"[^,\]}\n#]+").match(text, self._pos)
            if match is None:
                raise ValueError("no value")
            self._pos = match.end()

    def _keys(self) -> list[str]:
        keys: list[str] = []
        while True:
            self._skip(newlines=False)
            if self._text[self._pos] in "\"'":
                keys.append(self._string())
            else:
                match = re.compile(r"[A-Za-z0-9_-]+").match(self._text, self._pos)
                if match is None:
                    raise ValueError("no key")
                keys.append(match[0])
                self._pos = match.end()
            self._skip(newlines=False)
            if self._text[self._pos] != ".":
                return keys
            self._pos += 1

    def _string(self) -> str:
        text = self._text
        quote = text[self._pos]
        end = self._pos + 1
        while text[end] != quote or (quote == '"' and _escaped(text, end)):
            end += 1
        raw = text[self._pos + 1 : end]
        self._pos = end + 1
        if quote == '"' and "\\" in raw:
            try:
                return str(json.loads(f'"{raw}"'))
            except json.JSONDecodeError:
                return raw
        return raw

    def _expect(self, token: str) -> None:
        self._skip(newlines=False)
        if not self._text.startswith(token, self._pos):
            raise ValueError(f"expected {token}")
        self._pos += len(token)

    def _skip(self, *, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            char = text[self._pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self._pos += 1
            elif char == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return


def _escaped(text: str, index: int) -> bool:
    """True when the character at `index` is preceded by an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1
