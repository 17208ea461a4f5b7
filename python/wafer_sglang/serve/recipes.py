"""Launch recipes: named, versioned expansions to the exact sglang launch command.

Each recipe is checked against the selected base's real ServerArgs CLI (data/server_flags/,
dumped from upstream's code by the tests): flags the base does not know are left out, user
flags override recipe flags by destination (abbreviations resolved as argparse does), and
``--X`` / ``--no-X`` pairs override each other.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from wafer_sglang import resources
from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError
from wafer_sglang.serve.router import colauncher

DATA = resources.DATA


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    purpose: str
    launcher: str
    args: list[str]
    router_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_recipes() -> dict[str, Recipe]:
    data = tomllib.loads((DATA / "recipes.toml").read_text())
    return {name: Recipe(name=name, **entry) for name, entry in data["recipe"].items()}


def select(spec: str) -> Recipe:
    name, _, version = spec.partition("@")
    recipes = load_recipes()
    if name not in recipes:
        raise WaferError(f"unknown recipe {name!r}; `wafer-sglang serve --list` shows them")
    recipe = recipes[name]
    if version and int(version) != recipe.version:
        raise WaferError(f"recipe {name} is at version {recipe.version}; version {version} is not shipped")
    return recipe


class ServerFlags:
    """The CLI of one base's ServerArgs: option -> (dest, takes a value)."""

    def __init__(self, base: str):
        path = DATA / "server_flags" / f"{base}.json"
        if not path.is_file():
            raise WaferError(f"no server-flag table for sglang {base} ({path})")
        self.flags: dict[str, dict] = json.loads(path.read_text())

    def resolve(self, option: str) -> str | None:
        """The full option string, resolving unique prefixes like argparse (``--tp`` -> ``--tp-size``)."""
        if option in self.flags:
            return option
        candidates = {o for o in self.flags if o.startswith(option)}
        dests = {self.flags[o]["dest"] for o in candidates}
        return sorted(candidates)[0] if len(dests) == 1 else None

    def takes_value(self, option: str) -> bool:
        return self.flags[option]["takes_value"]

    def dest(self, option: str) -> str:
        return self.flags[option]["dest"]

    def check_choices(self, flag: Flag, base: str) -> None:
        choices = self.flags[flag.option].get("choices")
        bad = [v for v in flag.values if choices is not None and v not in choices]
        if bad:
            raise WaferError(f"{flag.option} {bad[0]}: sglang {base} accepts {', '.join(choices)}")


@dataclass(frozen=True)
class Flag:
    option: str
    values: tuple[str, ...] = ()
    inline: bool = False  # written --flag=value by the user: stays one token

    def tokens(self) -> list[str]:
        return [f"{self.option}={self.values[0]}"] if self.inline else [self.option, *self.values]


def parse_flags(argv: list[str], flags: ServerFlags, base: str) -> list[Flag]:
    """sglang args -> flags, in order; unknown options are an error."""
    parsed, i = [], 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise WaferError(f"unexpected argument {token!r} (sglang flags start with --)")
        option, eq, inline = token.partition("=")
        full = flags.resolve(option)
        if full is None:
            raise WaferError(f"{option} is not a flag of sglang {base}'s server (or it is ambiguous)")
        if eq:
            parsed.append(Flag(full, (inline,), inline=True))
            i += 1
        elif flags.takes_value(full):
            values = []
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            if not values:
                raise WaferError(f"{full} needs a value")
            parsed.append(Flag(full, tuple(values)))
        else:
            parsed.append(Flag(full))
            i += 1
    return parsed


@dataclass
class Expansion:
    argv: list[str]
    env: dict[str, str]
    notes: list[str]
    server_args: list[Flag]


SECRET_FLAGS = ("--api-key", "--admin-api-key")


def redacted(argv: list[str]) -> list[str]:
    """``argv`` as it may be printed: the value of every key flag replaced."""
    out, hide = [], False
    for token in argv:
        option, eq, _ = token.partition("=")
        out.append("***" if hide else f"{option}=***" if eq and option in SECRET_FLAGS else token)
        hide = token in SECRET_FLAGS
    return out


def expand(
    recipe: Recipe, model: str, base: str, extra: list[str], *, router: bool = True, api_key: str | None = None
) -> Expansion:
    """The launch command: the recipe's flags the base has, then the user's, which win (a flag
    and its --no- form share a destination and override each other)."""
    flags = ServerFlags(base)
    notes = list(recipe.notes)
    kept = []
    for option, values in _pairs(recipe.args):
        if option not in flags.flags:
            notes.append(f"{option} is not a flag of sglang {base}: left out")
            continue
        kept.append(Flag(option, tuple(values)))
    user = parse_flags(extra, flags, base)
    for flag in kept + user:
        flags.check_choices(flag, base)
    for flag in user:
        if flags.dest(flag.option) in ("api_key", "admin_api_key") and not "".join(flag.values).strip():
            # sglang adds its auth middleware only for a truthy key: an empty one serves the API open
            raise WaferError(f"{flag.option} is empty: the server would run without authentication; pass a key")
    overridden = {flags.dest(f.option) for f in user}
    merged = [f for f in kept if flags.dest(f.option) not in overridden] + user
    if any(flags.dest(f.option) == "model_path" for f in merged):
        raise WaferError("pass the model with --model, not --model-path")
    server = [Flag("--model-path", (model,))] + merged
    if api_key and "api_key" not in overridden:
        server.append(Flag("--api-key", (api_key,)))
    use_router = recipe.launcher == "router" and router
    if recipe.launcher == "router" and not router and "load_balance_method" not in overridden:
        server = [f for f in server if flags.dest(f.option) != "load_balance_method"] + [
            Flag("--load-balance-method", ("total_tokens",))
        ]
        notes.append("--no-router: sglang's own DP balancer (total_tokens), which is not cache-aware")
    module = f"{colauncher().module}.launch_server" if use_router else "sglang.launch_server"
    argv = [sys.executable, "-m", module] + [t for f in server for t in f.tokens()]
    if use_router:
        argv += recipe.router_args
    return Expansion(argv=argv, env=dict(recipe.env), notes=notes, server_args=server)


def looks_like_a_path(model: str) -> bool:
    """A hub id is ``org/name``; anything absolute, relative-dotted, ~, or deeper is a path."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1


def _pairs(args: list[str]) -> list[tuple[str, list[str]]]:
    pairs: list[tuple[str, list[str]]] = []
    for token in args:
        if token.startswith("--"):
            pairs.append((token, []))
        else:
            pairs[-1][1].append(token)
    return pairs
