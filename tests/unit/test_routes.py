"""The routing table (panels/routes.py): one entry per screen, everything else generated from it."""

from __future__ import annotations

from console.app import LlmdeckApp
from console.backend import READERS
from panels.command_line import APP_COMMANDS, COMMANDS, parse_command
from panels.routes import HOME, ROUTE_BY_NAME, ROUTES


def test_every_routed_view_type_has_a_reader() -> None:
    missing = [route.name for route in ROUTES if route.view not in READERS]
    assert not missing, f"no reader in console.backend.READERS for {missing}"


def test_route_names_aliases_and_keys_are_unique() -> None:
    words = [w for r in ROUTES if r.is_command for w in (r.name, *r.aliases)]
    words += [w for name, (_, aliases) in APP_COMMANDS.items() for w in (name, *aliases)]
    assert len(words) == len(set(words))
    keys = [r.key for r in ROUTES if r.key is not None]
    assert len(keys) == len(set(keys))
    assert len({r.view for r in ROUTES}) == len(ROUTES) and HOME in ROUTE_BY_NAME


def test_goto_bindings_keys_and_ids_come_from_the_table() -> None:
    goto = [(b.key, b.action, b.id) for b in LlmdeckApp.BINDINGS
            if not isinstance(b, tuple) and b.action.startswith("goto(")]
    assert goto == [(r.key, f"goto({r.name!r})", f"app.{r.name}") for r in ROUTES if r.key is not None]
    # ids are user keymap names (ui.keymap): the first four never change
    assert goto[:4] == [
        ("1", "goto('overview')", "app.overview"),
        ("2", "goto('slo')", "app.slo"),
        ("3", "goto('cost')", "app.cost"),
        ("4", "goto('traces')", "app.traces"),
    ]


def test_every_routed_command_and_alias_parses_to_its_route() -> None:
    for route in ROUTES:
        if route.is_command:
            assert COMMANDS[route.name] == (route.help, route.aliases)
            for word in (route.name, *route.aliases):
                assert parse_command(f":{word}") == (route.name, None)
        else:
            assert route.name not in COMMANDS or route.name in APP_COMMANDS
