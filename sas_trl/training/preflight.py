"""Settings this machine cannot run, refused in seconds, before any model work (`sas-trl train` only).

A GPU recipe on a CPU, vLLM that is not installed, wandb without credentials, a launch config with more
processes than GPUs, DeepSpeed or flash-attention without their packages, a `report_to` integration that is not
installed: each would otherwise fail after the model is loaded (minutes for the paper's 1.5B model), with a long
traceback. Every problem found is named in one `RecipeError` (one line, each problem with its fix), so a
start refused for one setting is not refused again for the next: the hardware (`hardware_problems`: GPU-only
settings without CUDA, more processes than GPUs), then packages, reporting integrations and credentials, then a
Hub dataset that cannot be reached (with the offline alternative).

The checks read the recipe's values with the command line's flags applied, before the settings are built:
transformers itself refuses bf16 on a CPU while the settings are built, with a message that does not say what to
pass. `check_machine` is the one entry point; `parse(argv, this_machine=True)` calls it. `sas-trl train --dry_run`
runs `machine_problems(..., hardware=False)` instead and reports `hardware_problems` as skipped.
"""

from __future__ import annotations

import configparser
import importlib.util
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..constants import BUILTIN_DATASET, DEEPSCALER_ID
from ..errors import RecipeError
from .datasets import offline_dataset_hint
from .launch import is_launched_child
from .packaged import resolve_path
from .trainer_settings import OPTIMIZER_PACKAGES, as_bool, settings_problems
from .trainer_settings import attention as _attention
from .trainer_settings import init_kwargs as _init_kwargs
from .trainer_settings import is_none as _none
from .trainer_settings import launch_config as _launch_config
from .trainer_settings import on_cuda as _on_cuda

# Settings read from the recipe and the flags (each flag's last value wins, as argparse does).
KEYS = (
    "bf16",
    "fp16",
    "tf32",
    "use_cpu",
    "use_vllm",
    "report_to",
    "accelerate_config",
    "num_processes",
    "attn_implementation",
    "load_in_4bit",
    "load_in_8bit",
    "use_liger_kernel",
    "dataset_name",
    "dataset_config",
    "optim",
    "fsdp",
    "use_peft",
    "model_init_kwargs",
)
FLASH_ATTENTION = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
NO_WANDB_MODES = ("offline", "disabled", "dryrun")
# transformers' `report_to` names -> the module it needs (wandb has its own check: credentials too).
REPORTERS = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "mlflow": ("mlflow",),
    "comet_ml": ("comet_ml",),
    "clearml": ("clearml",),
    "trackio": ("trackio",),
    "swanlab": ("swanlab",),
    "neptune": ("neptune",),
    "dvclive": ("dvclive",),
    "codecarbon": ("codecarbon",),
    "aim": ("aim",),
}


def cuda_devices() -> int:
    """The CUDA (or ROCm) devices this process sees (0 on a CPU-only machine)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def installed(module: str) -> bool:
    """Whether `module` can be imported (without importing it: vLLM's import alone takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def effective_values(recipe: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """The `KEYS` settings as the run will see them: the recipe's values, then the flags' (still text)."""
    values = {key: recipe[key] for key in KEYS if key in recipe}
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not arg.startswith("--"):
            continue
        name, sep, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if sep:
            given: list[str] = [value]
        else:
            given = []
            while index < len(argv) and not argv[index].startswith("--"):
                given.append(argv[index])
                index += 1
        if name in KEYS:
            values[name] = given[0] if len(given) == 1 else (given or True)
    return values


def _reporters(value: Any) -> list[str]:
    if _none(value):
        return []
    names = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
    names = [str(n).strip() for n in names if str(n).strip() and str(n).strip() != "none"]
    if "all" in names:
        from transformers.integrations import get_available_reporting_integrations

        names = [n for n in names if n != "all"] + list(get_available_reporting_integrations())
    return names


def check_machine(recipe: dict[str, Any], argv: list[str]) -> None:
    """Refuse (`RecipeError`, one line naming every problem found) settings this machine cannot run; see the
    module's docstring."""
    problems = machine_problems(effective_values(recipe, argv))
    if problems:
        raise RecipeError(join_problems(problems))


# Settings transformers refuses to build on a machine without CUDA, and the value that builds anywhere.
BUILD_ON_CPU = {"use_cpu": ("true", True), "tf32": ("false", False), "fp16": ("false", False)}


def build_flags(values: dict[str, Any]) -> list[str]:
    """Flags that let any machine build the settings (`use_cpu`, no tf32 or fp16: transformers refuses those
    without CUDA while it builds them), so the recipe's own checks run for a recipe written for other hardware.
    Only for checking: the run itself is built from the recipe as written."""
    flags = []
    for key, (flag_value, build_value) in BUILD_ON_CPU.items():
        if as_bool(values.get(key, False)) != build_value:
            flags += [f"--{key}", flag_value]
    return flags


def join_problems(problems: list[str]) -> str:
    """One line: the problem itself, or each numbered ("2 problems, all found before starting: 1) ...; 2) ...")."""
    if len(problems) == 1:
        return problems[0]
    listed = "; ".join(f"{number}) {problem}" for number, problem in enumerate(problems, start=1))
    return f"{len(problems)} problems, all found before starting: {listed}"


def machine_problems(values: dict[str, Any], *, hardware: bool = True) -> list[str]:
    """Every problem of `values` (`effective_values`) on this machine: its hardware (unless `hardware` is False),
    packages, reporting integrations and credentials, and a Hub dataset that cannot be reached.

    A package needed by a setting that the hardware problem already says to switch off is not named again."""
    problems: list[str] = []
    named: set[str] = set()
    if hardware:
        found, named = hardware_problems(values)
        problems += found
    problems += settings_problems(values)
    problems += _package_problems(values, skip=named)
    problems += _reporter_problems(values)
    problems += _data_problems(values)
    return problems


def hardware_problems(values: dict[str, Any]) -> tuple[list[str], set[str]]:
    """This machine's CUDA checks: GPU-only settings without a CUDA device, more processes than GPUs. Returns
    the problems and the settings they name (whose packages need no separate mention)."""
    gpus = cuda_devices()
    if gpus == 0:
        return _check_cpu_machine(values)
    problem = _check_gpu_machine(values, gpus)
    return ([problem] if problem else []), set()


def _check_cpu_machine(values: dict[str, Any]) -> tuple[list[str], set[str]]:
    """A GPU recipe on a machine without CUDA: every GPU-only setting named at once, with the flags that fix it."""
    needs: list[str] = []
    fixes: list[str] = []
    named: set[str] = set()
    use_cpu = as_bool(values.get("use_cpu", False))
    fp16 = as_bool(values.get("fp16", False))
    bf16 = values.get("bf16")
    if _none(bf16) and not fp16 and not use_cpu:  # GRPOConfig's own default: bf16 unless fp16 is set
        needs.append("bf16 (GRPOConfig's default when unset)")
        fixes += ["--use_cpu true", "--bf16 false"]
    elif as_bool(bf16) and not use_cpu:
        needs.append("bf16")
        fixes += ["--use_cpu true", "--bf16 false"]
    if fp16:
        needs.append("fp16")
        fixes.append("--fp16 false")
    if as_bool(values.get("tf32", False)):
        needs.append("tf32")
        fixes.append("--tf32 false")
    if as_bool(values.get("use_vllm", False)):
        needs.append("use_vllm")
        fixes.append("--use_vllm false")
        named.add("use_vllm")
    for key in ("load_in_4bit", "load_in_8bit"):
        if as_bool(values.get(key, False)):
            needs.append(key)
            fixes.append(f"--{key} false")
            named.add(key)
    attn, attn_key = _attention(values)
    if attn in FLASH_ATTENTION:
        needs.append(f"{attn_key} {attn}")
        fixes.append("--attn_implementation sdpa")
        named.add("attn_implementation")
    optim = str(values.get("optim", "") or "")
    if OPTIMIZER_PACKAGES.get(optim, ("",))[0] == "bitsandbytes":
        needs.append(f"optim {optim} (bitsandbytes)")
        fixes.append("--optim adamw_torch")
        named.add("optim")
    device_map = _init_kwargs(values).get("device_map")
    if isinstance(device_map, str | int) and not isinstance(device_map, bool) and _on_cuda(device_map):
        needs.append(f"model_init_kwargs.device_map {device_map!r}")
        fixes.append("(remove device_map from model_init_kwargs)")
    if as_bool(values.get("use_liger_kernel", False)):
        needs.append("use_liger_kernel (Triton kernels)")
        fixes.append("--use_liger_kernel false")
        named.add("use_liger_kernel")
    path, config = _launch_config(values.get("accelerate_config"))
    kind = str(config.get("distributed_type", "")).upper()
    if kind in ("DEEPSPEED", "FSDP", "MULTI_GPU", "XLA"):
        needs.append(f"accelerate_config {path} ({kind})")
        fixes.append("--accelerate_config null")
        named.add("accelerate_config")
    if not needs:
        return [], named
    return [
        f"this recipe is written for GPUs and this machine has no CUDA device ({', '.join(needs)} need one); "
        f"for a CPU run pass {' '.join(fixes)}"
    ], named


def _check_gpu_machine(values: dict[str, Any], gpus: int) -> str | None:
    """On GPUs: a launch config asking for more processes than there are GPUs (on this one node)."""
    path, config = _launch_config(values.get("accelerate_config"))
    kind = str(config.get("distributed_type", "")).upper()
    if is_launched_child() or str(config.get("num_machines", 1)).strip() not in ("1", "None", ""):
        return None  # already launched, or processes counted over several nodes
    flag = values.get("num_processes")
    try:
        processes = int(flag) if not _none(flag) else int(config.get("num_processes", 1))
    except (TypeError, ValueError):
        return None  # not a number: the settings' own check names it
    if processes > gpus and kind != "MULTI_CPU":
        where = "num_processes" if not _none(flag) else f"accelerate_config {path}"
        return (
            f"{where} starts {processes} processes, one per GPU, but this machine has {gpus} GPU(s); pass "
            f"--num_processes {gpus} (and raise gradient_accumulation_steps to keep the recipe's batch size)"
        )
    return None


def _package_problems(values: dict[str, Any], skip: set[str] = frozenset()) -> list[str]:
    """Settings that need a package that is not installed (those in `skip` are named already)."""
    problems = []
    if as_bool(values.get("use_vllm", False)) and "use_vllm" not in skip and not installed("vllm"):
        problems.append(
            "use_vllm: true needs vLLM, which is not installed: pip install 'sas-trl[vllm]' (a CUDA machine), "
            "or pass --use_vllm false to generate with transformers (slower)"
        )
    path, config = _launch_config(values.get("accelerate_config"))
    deepspeed = str(config.get("distributed_type", "")).upper() == "DEEPSPEED"
    if deepspeed and "accelerate_config" not in skip and not installed("deepspeed"):
        problems.append(
            f"accelerate_config {path} uses DeepSpeed, which is not installed: pip install 'sas-trl[deepspeed]', "
            "or pass --accelerate_config recipes/accelerate/ddp.yaml (or null for one process)"
        )
    attn, attn_key = _attention(values)
    flash = attn in FLASH_ATTENTION and "attn_implementation" not in skip
    if flash and not installed(FLASH_ATTENTION[str(attn)]):
        problems.append(
            f"{attn_key} {attn} needs the {FLASH_ATTENTION[str(attn)]} package, which is not installed: "
            "pip install flash-attn --no-build-isolation, or pass --attn_implementation sdpa"
        )
    optim = str(values.get("optim", "") or "")
    if optim in OPTIMIZER_PACKAGES and "optim" not in skip and not installed(OPTIMIZER_PACKAGES[optim][0]):
        module, package = OPTIMIZER_PACKAGES[optim]
        problems.append(
            f"optim {optim} needs the {module} package, which is not installed: pip install {package}, or pass "
            "--optim adamw_torch"
        )
    for key in ("load_in_4bit", "load_in_8bit"):
        if as_bool(values.get(key, False)) and key not in skip and not installed("bitsandbytes"):
            problems.append(f"{key}: true needs bitsandbytes: pip install bitsandbytes, or pass --{key} false")
    liger = as_bool(values.get("use_liger_kernel", False)) and "use_liger_kernel" not in skip
    if liger and not installed("liger_kernel"):
        problems.append(
            "use_liger_kernel: true needs liger-kernel: pip install liger-kernel, or pass --use_liger_kernel false"
        )
    return problems


def _reporter_problems(values: dict[str, Any]) -> list[str]:
    """`report_to` integrations: installed, and wandb logged in (or offline)."""
    problems = []
    for name in _reporters(values.get("report_to")):
        if name == "wandb":
            problems += [problem] if (problem := _wandb_problem()) else []
        elif name in REPORTERS and not any(installed(m) for m in REPORTERS[name]):
            problems.append(
                f"report_to {name}: {REPORTERS[name][0]} is not installed: pip install {REPORTERS[name][0]}, "
                "or pass --report_to none"
            )
    return problems


def _data_problems(values: dict[str, Any]) -> list[str]:
    """A Hub dataset this machine cannot reach (neither cached nor online), with the offline alternative.

    Checked in the starting process only (not once per launched process); local files are checked by
    `validation`, and the data themselves when they are loaded."""
    name = values.get("dataset_name", DEEPSCALER_ID)
    if _none(name) or is_launched_child():
        return []
    name = str(name)
    if name == BUILTIN_DATASET or _looks_local(name):
        return []
    reason = hub_dataset_unreachable(name)
    if reason is None:
        return []
    config = values.get("dataset_config")
    where = f"{name} (config {config!r})" if not _none(config) else name
    return [f"Hub dataset {where} cannot be reached from this machine ({reason}){offline_dataset_hint(name)}"]


def _looks_local(value: str) -> bool:
    # A Hub id is "name" or "org/name"; anything else (a suffix, more parts, ./ ~ /) is a path.
    return (
        value.startswith((".", "/", "~"))
        or value.count("/") > 1
        or Path(value).suffix != ""
        or Path(resolve_path(value) or value).exists()
    )


def hub_dataset_unreachable(name: str) -> str | None:
    """Why the Hub dataset `name` cannot be loaded here, or None when it can (in the Hugging Face cache, or the
    Hub answers within seconds). Reads no data and writes nothing."""
    from huggingface_hub import constants

    if (Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}").is_dir():
        return None  # downloaded before: `datasets` reads the cached files
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(name, timeout=10)
    except Exception as err:  # noqa: BLE001 - offline, gated, no such dataset: the message says which
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}: {text}"[:300]
    return None


def _wandb_problem() -> str | None:
    if not installed("wandb"):
        return "report_to wandb: wandb is not installed: pip install wandb, or pass --report_to none"
    if wandb_mode() in NO_WANDB_MODES or wandb_logged_in():
        return None
    return (
        "report_to wandb: no wandb credentials (no WANDB_API_KEY, no netrc entry for "
        f"{wandb_host()}); run `wandb login`, or set WANDB_MODE=offline to log locally, or pass --report_to none"
    )


def wandb_host() -> str:
    """The host wandb authenticates against (WANDB_BASE_URL, else api.wandb.ai)."""
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"


def wandb_mode() -> str:
    """WANDB_MODE, else the mode `wandb offline` / `wandb disabled` saved (this folder's, then the user's)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"].strip().lower()
    config_dir = Path(os.environ.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb")
    for settings in (Path(os.environ.get("WANDB_DIR", ".")) / "wandb" / "settings", config_dir / "settings"):
        parser = configparser.ConfigParser()
        try:
            parser.read(settings, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if parser.has_option("default", "mode"):
            return parser.get("default", "mode").strip().lower()
    return ""


def wandb_logged_in() -> bool:
    """An API key in the environment, an identity token file, or a netrc entry for the wandb host."""
    if os.environ.get("WANDB_API_KEY", "").strip() or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    files = [Path(os.environ["NETRC"])] if os.environ.get("NETRC") else []
    files += [Path.home() / ".netrc", Path.home() / "_netrc"]
    for file in files:
        if not file.is_file():
            continue
        try:
            entry = netrc.netrc(str(file)).authenticators(wandb_host())
        except (netrc.NetrcParseError, OSError, UnicodeDecodeError):
            continue
        if entry and entry[2]:
            return True
    return False
