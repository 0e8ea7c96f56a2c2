"""Credentials never written or printed: one redaction for recipes, model cards, printed commands and uploads.

A credential is known two ways:

- by name: a recipe key, `env:` entry, flag or mapping key whose name reads as a credential (`hub_token`,
  `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, `WANDB_API_KEY`, `OPENAI_API_KEY`, `DB_PASSWORD`, `CLIENT_SECRET`, ...):
  its value is replaced by `REDACTED` wherever the name is seen;
- by value: the values of those names in this process's environment and the ones `remember` was given (the
  recipe's `env:` credentials and `--hub_token`, when the recipe is read) are replaced wherever they appear in
  text: a flag, a run name, a printed command, an error message, a card. So is the password of a URL
  (`https://user:PASSWORD@host`).

A saved recipe keeps the names and says `<redacted>`: read again with `--recipe`, such an `env:` entry leaves the
variable as the environment has it, and such a key is left unset (`recipes.parse`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") are not matched by value: they would blank out ordinary text

# A name is split into words (`_`, `-`, `.`, camelCase); it names a credential when a word is one of these, or
# ends with one of the long ones (`AUTHTOKEN`, `HFTOKEN`, `APIKEY`) ...
_SECRET_WORDS = frozenset({"TOKEN", "KEY", "KEYS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASS", "PASSPHRASE",
                           "APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH", "COOKIE"})  # fmt: skip
_SECRET_ENDINGS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "APIKEY")
# ... unless a word says it names where a credential is, which one, or a switch about one (`HF_TOKEN_PATH`,
# `WANDB_IDENTITY_TOKEN_FILE`, `AWS_ACCESS_KEY_ID`, `HF_HUB_DISABLE_IMPLICIT_TOKEN`): paths, ids and flags; or the
# TOKEN is a tokenizer's (`pad_token`, `eos_token`, `image_token`).
_NOT_SECRET_WORDS = frozenset({"PATH", "FILE", "DIR", "SOCK", "DISABLE", "ENABLE", "ID", "IDS"})
# fmt: off
_TOKENIZER_WORDS = frozenset({"PAD", "EOS", "BOS", "UNK", "SEP", "CLS", "MASK", "SPECIAL", "ADDED", "IMAGE", "VIDEO",
                              "AUDIO", "VISION", "BOI", "EOI", "BOA", "EOA", "BOT", "EOT", "START", "END", "THINK",
                              "TOOL", "FIM", "PREFIX", "SUFFIX", "MIDDLE", "CHAT", "SYSTEM", "USER", "ASSISTANT"})
# fmt: on
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^/\s@]+)(?=@)")

_remembered: set[str] = set()


def is_secret_name(name: Any) -> bool:
    """Whether a recipe key, environment variable, flag or mapping key names a credential."""
    if not isinstance(name, str):
        return False
    words = [w.upper() for w in _WORD.findall(name.lstrip("-"))]
    if not words or any(w in _NOT_SECRET_WORDS for w in words):
        return False
    if words[-1] == "TOKEN" and len(words) > 1 and words[-2] in _TOKENIZER_WORDS:
        return False
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words)


def remember(value: Any) -> None:
    """Treat `value` as a credential from now on in this process (matched by value wherever it appears)."""
    if _is_secret_value(value):
        _remembered.add(str(value))


def _is_secret_value(value: Any) -> bool:
    """A value long enough to be matched as a credential (text or a number, not `REDACTED`)."""
    text = str(value)
    return (
        isinstance(value, str | int)
        and not isinstance(value, bool)
        and len(text) >= MIN_SECRET_LENGTH
        and (text != REDACTED)
    )


def remember_recipe(recipe: Any) -> None:
    """Remember the credentials a recipe holds: the values of its secret-named keys, at any depth (`hub_token`,
    `env:` entries such as `WANDB_API_KEY`, `model_init_kwargs.token`)."""
    if isinstance(recipe, Mapping):
        for key, value in recipe.items():
            if is_secret_name(key):
                remember(value)
            remember_recipe(value)
    elif isinstance(recipe, list | tuple):
        for value in recipe:
            remember_recipe(value)


def secret_values() -> list[str]:
    """Every credential known by value now (remembered, and this environment's secret-named variables), longest
    first so that a secret containing another is replaced whole."""
    found = set(_remembered)
    for name, value in os.environ.items():
        if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH and value != REDACTED:
            found.add(value)
    return sorted(found, key=len, reverse=True)


def redact_text(text: str) -> str:
    """`text` with every known credential replaced by `REDACTED`, and the passwords of URLs too."""
    if not isinstance(text, str):
        return text
    for value in secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    return _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED, text)


def redact_value(value: Any, by_value: bool = True) -> Any:
    """A copy of a recipe value (mappings and lists walked) with secret-named keys' values replaced by
    `REDACTED`, and (with `by_value`) known credentials inside text replaced too. Other values are kept as is."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_name(k) and v not in (None, "") else redact_value(v, by_value))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, by_value) for v in value)
    if by_value and isinstance(value, str):
        return redact_text(value)
    return value


def redact_recipe(recipe: Mapping[str, Any], by_value: bool = True) -> dict[str, Any]:
    """A recipe as it may be saved, printed or uploaded: `redact_value` of each key (the `env:` mapping too)."""
    return redact_value(dict(recipe), by_value)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line as it may be printed or logged: the value of a secret-named flag (`--hub_token X`,
    `--hub_token=X`) replaced, and known credentials anywhere replaced by value."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-"):
            name, equals, _ = arg.partition("=")
            if is_secret_name(name):
                if equals:
                    out.append(f"{name}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(redact_text(arg))
    return out


def find_secrets(data: Any, where: str = "") -> list[str]:
    """Where a loaded YAML/JSON document holds a credential in clear: the dotted key of every secret-named key
    with a value (not `REDACTED`), and of every text that contains a known credential."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if is_secret_name(key) and _is_secret_value(value):
                found.append(path)
            else:
                found += find_secrets(value, path)
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            found += find_secrets(value, f"{where}[{i}]")
    elif isinstance(data, str) and redact_text(data) != data:
        found.append(where or "(text)")
    return found
