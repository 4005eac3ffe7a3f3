"""The optional integrations a command line asks for, checked before Hydra composes it.

The launchers and the sweeper are Hydra plugins in pyproject's extras. Without one, Hydra
would say only "Could not find 'hydra/launcher/ray'"; this names the extra to install.
"""

import importlib.resources
import importlib.util
from collections.abc import Iterator, Sequence

import yaml

# (config group, choice) -> (the plugin's module, cnnlab's extra)
PLUGINS = {
    ("launcher", "ray"): ("hydra_plugins.hydra_ray_launcher", "ray"),
    ("launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
}
INSTALL = {
    # hydra-ray-launcher pins cloudpickle<3 for its AWS launcher, which scikit-learn's joblib
    # (cloudpickle>=3) rules out; the local and existing-cluster launcher uses Ray's own pickler.
    "ray": "pip install 'cnnlab[ray]' && pip install --no-deps hydra-ray-launcher==1.2.2",
    "slurm": "pip install 'cnnlab[slurm]'",
    "optuna": "pip install 'cnnlab[optuna]'",
}
GROUPS = {"launcher": "launcher", "hydra/launcher": "launcher", "hydra/sweeper": "sweeper"}  # key -> group
SHOWN = {"launcher": "launcher", "sweeper": "hydra/sweeper"}  # group -> the key a user types


def missing(argv: Sequence[str]) -> str | None:
    """What to install for the first plugin `argv` chooses that is not installed, or None."""
    for group, choice in chosen(argv):
        module, extra = PLUGINS.get((group, choice), (None, None))
        if module and importlib.util.find_spec(module) is None:
            return f"{SHOWN[group]}={choice} needs cnnlab's `{extra}` extra: {INSTALL[extra]}"
    return None


def chosen(argv: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(group, choice) for every launcher and sweeper the overrides choose, also through an
    experiment preset's defaults list (experiment=tune_adam chooses hydra/sweeper=optuna)."""
    for token in argv:
        key, _, value = token.lstrip("+~").partition("=")
        for choice in value.split(","):  # a multirun's choices
            if key in GROUPS:
                yield GROUPS[key], choice
            elif key == "experiment":
                yield from _preset_choices(choice)


def _preset_choices(name: str) -> Iterator[tuple[str, str]]:
    path = importlib.resources.files("cnnlab.conf.experiment") / f"{name}.yaml"
    if not path.is_file():
        return  # Hydra names the unknown preset
    for entry in (yaml.safe_load(path.read_text()) or {}).get("defaults") or []:
        for key, choice in (entry.items() if isinstance(entry, dict) else ()):
            key = key.removeprefix("override ").strip("/")
            if key in GROUPS:
                yield GROUPS[key], str(choice)
