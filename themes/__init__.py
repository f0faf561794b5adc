"""llmdeck's Textual themes (data only) and the stylesheet path.

The .tcss uses only theme variables, so switching theme recolours everything.
State is never carried by colour alone: panels pair every colour with a
symbol and a word (✔ ok, ▲ ticket/warning, ✖ page/critical).
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

STYLESHEET = Path(__file__).with_name("llmdeck.tcss")

DARK = Theme(
    name="llmdeck-dark",
    primary="#5fafd7",
    secondary="#8787d7",
    accent="#ffaf5f",
    foreground="#d0d0d0",
    background="#121417",
    surface="#1b1f24",
    panel="#262b32",
    success="#5fd787",
    warning="#ffd75f",
    error="#ff5f5f",
    dark=True,
)

LIGHT = Theme(
    name="llmdeck-light",
    primary="#005f87",
    secondary="#5f5faf",
    accent="#af5f00",
    foreground="#1c1c1c",
    background="#fafafa",
    surface="#eeeeee",
    panel="#e0e0e0",
    success="#007f3f",
    warning="#8a6100",
    error="#c00000",
    dark=False,
)

HIGH_CONTRAST = Theme(
    name="llmdeck-high-contrast",
    primary="#ffffff",
    secondary="#00ffff",
    accent="#ffff00",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#1a1a1a",
    success="#00ff00",
    warning="#ffff00",
    error="#ff3030",
    dark=True,
    variables={"border": "#ffffff", "footer-key-foreground": "#ffff00"},
)

THEMES: tuple[Theme, ...] = (DARK, LIGHT, HIGH_CONTRAST)
THEME_NAMES: tuple[str, ...] = tuple(t.name for t in THEMES)
ALIASES = {"dark": DARK.name, "light": LIGHT.name, "high-contrast": HIGH_CONTRAST.name,
           "hc": HIGH_CONTRAST.name}


def resolve(name: str) -> str | None:
    """A theme name from a config value, `--theme` or `:theme` (aliases allowed)."""
    name = ALIASES.get(name, name)
    return name if name in THEME_NAMES else None
