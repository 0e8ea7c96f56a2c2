"""The recipes that ship inside the package (`sas_trl/recipes`, the repository's `recipes/` folder in the wheel).

A recipe is named by its path, as in a clone: `recipes/deepscaler_4k.yaml`. When that file does not exist where
the command runs (an installed package, any folder), the same path is looked up in the packaged folder, so the
README's commands work anywhere. A short name works too: `deepscaler_4k`, `baselines/l1_max`,
`ablations/only_correct.yaml` (relative to the recipes folder, `.yaml` optional). A local file always wins
(`--recipe NAME` also reads a local `NAME.yaml` before the packaged one).

Paths written inside a recipe or a study (`accelerate_config: recipes/accelerate/zero2.yaml`, a study's
`base_recipe`, a `dataset_name` file under `recipes/`) are relative to the current folder, as before; when such a
path starts with `recipes/` and does not exist here, it is mapped to the packaged folder the same way. A
recipe's `base:` include is relative to the recipe file itself, so it stays inside the package; a `base:` that
does not exist there names a packaged recipe (`base: recipes/tiny_cpu.yaml` in a recipe of one's own).
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from ..errors import RecipeError

# In the source tree `sas_trl/recipes` is a symbolic link to the repository's `recipes/` (one copy in git);
# the wheel holds the files themselves (pyproject.toml's package-data).
PACKAGED = Path(__file__).resolve().parents[1] / "recipes"
PREFIX = "recipes/"
# Folders of the packaged recipes that hold something other than `sas-trl train` recipes.
NOT_TRAINING = ("accelerate", "studies", "verl")


def packaged_path(value: str) -> Path | None:
    """The packaged file `value` names (`recipes/X.yaml`, or `X` / `X.yaml` relative to the recipes folder).

    None when there is none. Only relative names inside the folder are looked up (no `..`, no absolute path).
    """
    text = value.replace("\\", "/")
    posix = PurePosixPath(text)
    if posix.is_absolute() or ".." in posix.parts or not text.strip():
        return None
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    candidates = [text] if text.endswith((".yaml", ".yml", ".py", ".jsonl", ".json")) else [f"{text}.yaml", text]
    for candidate in candidates:
        path = PACKAGED / candidate
        if path.is_file():
            return path
    return None


def packaged_folder_or_file(name: str) -> Path:
    """The absolute path of a packaged file or folder named relative to the recipes folder (`verl`,
    `verl/deepscaler_4k_sas.yaml`; a leading `recipes/` is allowed), for tools that take a path (verl's
    `--config-path`). Raises a `RecipeError` naming the folder's entries when there is none."""
    relative = PurePosixPath(name.strip().removeprefix(PREFIX).strip("/"))
    path = PACKAGED / relative
    if relative.parts and ".." not in relative.parts and path.exists():
        return path
    entries = sorted(p.name for p in PACKAGED.iterdir())
    raise RecipeError(f"no packaged recipe file or folder {name!r} in {PACKAGED}; it holds: {', '.join(entries)}")


def resolve_recipe(source: str | os.PathLike) -> Path:
    """The recipe file `--recipe SOURCE` reads: SOURCE itself when it exists, else the packaged recipe it names.

    A name that is neither raises a `RecipeError` naming it, the nearest packaged names and `sas-trl recipes`.
    """
    path = Path(source)
    if path.exists():  # a local path always wins (a folder is reported by `load_recipe`)
        return path
    if path.suffix not in (".yaml", ".yml") and path.with_name(f"{path.name}.yaml").is_file():
        return path.with_name(f"{path.name}.yaml")  # `--recipe my_run` for a local my_run.yaml
    found = packaged_path(str(source))
    if found is not None:
        return found
    names = [name for name, _ in training_recipes()]
    typed = str(source).replace("\\", "/").removeprefix(PREFIX).removesuffix(".yaml")
    close = difflib.get_close_matches(typed, names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise RecipeError(
        f"recipe not found: {source} (no such file here, nor a packaged recipe of that name; {hint}"
        "`sas-trl recipes` lists them)"
    )


def resolve_path(value: str | None) -> str | None:
    """A path written in a recipe or study: itself when it exists here, else the packaged file a `recipes/...`
    path names (unchanged when there is none: the usual checks then report it)."""
    if not value or not value.replace("\\", "/").startswith(PREFIX) or Path(value).exists():
        return value
    found = packaged_path(value)
    return str(found) if found is not None else value


def accelerate_names() -> dict[str, Path]:
    """Accelerate configs by name, as TRL's CLI takes them: ours (`recipes/accelerate/NAME.yaml`), then TRL's
    own (`trl/accelerate_configs`: zero1, fsdp1, fsdp2, multi_gpu, single_gpu, ...) for names we do not ship."""
    names: dict[str, Path] = {}
    try:
        from importlib import resources

        for entry in resources.files("trl.accelerate_configs").iterdir():
            if entry.name.endswith(".yaml"):
                names[entry.name.removesuffix(".yaml")] = Path(str(entry))
    except (ImportError, OSError, TypeError):  # TRL without packaged configs: ours only
        pass
    names.update({path.stem: path for path in sorted((PACKAGED / "accelerate").glob("*.yaml"))})
    return dict(sorted(names.items()))


def resolve_accelerate_config(value: str | None) -> str | None:
    """`accelerate_config`: a path (a `recipes/...` path mapped as `resolve_path` does), or a config's name
    (`zero2`, `zero3`, `fsdp`, `ddp`, or TRL's `zero1`, `fsdp2`, `multi_gpu`, ...: `accelerate_names`).

    A value that is neither an existing file nor a path-like name raises a `RecipeError` listing the names."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return value
    text = str(value)
    path_like = "/" in text.replace("\\", "/") or text.endswith((".yaml", ".yml", ".json")) or Path(text).exists()
    if path_like:
        return resolve_path(text)
    names = accelerate_names()
    if text in names:
        return str(names[text])
    raise RecipeError(
        f"accelerate_config {text!r} is neither a file nor a known config name; names: {', '.join(names)} "
        "(ours: `sas-trl recipes` lists them), or a path to an accelerate config file"
    )


def resolve_base(recipe: Path, base: str) -> Path:
    """The file a recipe's `base: BASE` includes: BASE relative to the recipe's folder when it exists there,
    else the packaged recipe BASE names (`recipes/deepscaler_4k.yaml`, `deepscaler_4k`), so a recipe of one's
    own can include a packaged one without a clone."""
    local = (recipe.parent / base).resolve()
    if local.exists():
        return local
    found = packaged_path(base)
    return found.resolve() if found is not None else local


# A sentence ends at . ! or ? followed by a space and a capital (not "et al. 2025", "e.g. a", "4.5").
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\"'])")


def describe(path: Path) -> str:
    """A packaged file's one-line description: the first sentence of its leading comment (a YAML file) or of its
    docstring (a Python file), whole however many lines it spans; '' when it has none."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        paragraph = " ".join((ast.get_docstring(ast.parse(text)) or "").split("\n\n")[0].split())
        return SENTENCE_END.split(paragraph, maxsplit=1)[0]
    words: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        comment = stripped[1:] if stripped.startswith("#") else None
        if comment is None:
            if stripped or words:
                break  # the recipe itself, or a blank line after the comment
            continue
        if comment.strip().startswith("@"):
            continue  # Hydra's `# @package _global_` directive
        if not comment.strip() or comment.startswith("   "):
            if words:
                break  # the comment's first paragraph ended (a blank line, an indented command)
            continue
        words.append(comment.strip())
    return SENTENCE_END.split(" ".join(words), maxsplit=1)[0]


def is_study(path: Path) -> bool:
    """Whether a packaged YAML file is a `sas-trl compare` study (it has `conditions:`), not a study's base recipe."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "conditions" in data


@dataclass(frozen=True)
class Entry:
    """One packaged file: its name (relative to the recipes folder, without `.yaml`) and description."""

    name: str
    description: str
    path: Path


def _entries(folder: Path, keep, pattern: str = "*.yaml") -> list[Entry]:
    found = []
    for path in sorted(folder.rglob(pattern)):
        name = path.relative_to(PACKAGED).with_suffix("").as_posix()
        if keep(name):
            found.append(Entry(name, describe(path), path))
    return found


def training_recipes() -> list[tuple[str, str]]:
    """(name, description) of every packaged `sas-trl train` recipe, top-level recipes first."""
    entries = _entries(PACKAGED, lambda name: name.split("/", 1)[0] not in NOT_TRAINING)
    entries.sort(key=lambda e: (e.name.count("/"), e.name))
    return [(e.name, e.description) for e in entries]


def other_files(folder: str) -> list[tuple[str, str]]:
    """(name, description) of the packaged files in `folder`: `studies` (the studies only, not their base
    recipes), `accelerate`, `verl` (its configs, then its Python files, named with their `.py`)."""
    if folder == "studies":
        entries = [e for e in _entries(PACKAGED / folder, lambda name: True) if is_study(e.path)]
    else:
        entries = _entries(PACKAGED / folder, lambda name: True)
    if folder == "verl":
        entries += [Entry(f"{e.name}.py", e.description, e.path) for e in _entries(PACKAGED / folder, bool, "*.py")]
    return [(e.name, e.description) for e in entries]
