"""What every benchmark shares: side-by-side timing, the machine's description, result rows.

Timings on a shared machine drift by 2x within a minute, so a benchmark never
compares two numbers taken minutes apart: `interleaved` times its candidates
in rounds (A, B, C, A, B, C, ...) and reports each one's median and each
one's median ratio to the first, computed round by round.
"""

import dataclasses
import os
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# PyTorch's OpenMP threads spin while they wait by default; on a machine whose
# cores are shared with other jobs that made its LeNet-5 step 5-10x slower
# (40 ms passive against 150-650 ms spinning, 2 threads, load average 4).
# Passive waiting is PyTorch's better setting here; it must be set before
# torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclasses.dataclass
class Figure:
    """One row of docs/performance.md."""

    bench: str  # which benchmark (1 ... 7, or "conv")
    name: str  # what was measured
    value: str  # the figure, with its unit
    batch: str = ""
    goal: str = ""
    ratio: float | None = None  # the measured ratio the goal is about
    met: bool | None = None  # None: no goal, or not measured
    notes: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def block(x: Any) -> Any:
    """Wait for every array in a pytree (JAX or PyTorch) to be computed."""
    import jax

    return jax.block_until_ready(x)


def interleaved(candidates: Mapping[str, Callable[[], Any]], rounds: int = 5, warmup: int = 1) -> dict[str, dict]:
    """Time each zero-argument callable once per round, in turn; each must block until done.

    Returns {name: {"median_s", "min_s", "times_s", "ratio"}} where "ratio" is the
    median over rounds of (this time / the first candidate's time in the same round).
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    base = np.array(times[names[0]])
    return {
        name: {
            "median_s": float(np.median(t)),
            "min_s": float(np.min(t)),
            "times_s": [float(v) for v in t],
            "ratio": float(np.median(np.array(t) / base)),
        }
        for name, t in times.items()
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict[str, str]:
    """The machine and the versions a figure was measured with."""
    import jax

    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": ", ".join(d.device_kind for d in jax.devices()),
    }
    for module in ("flax", "optax", "torch"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = "not installed"
    return info


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def report(title: str, figures: list[Figure]) -> None:
    """Print a benchmark's figures as it finishes them."""
    print(f"== {title}  (load average {load_average()})", flush=True)
    for f in figures:
        ratio = "" if f.ratio is None else f"  ratio {f.ratio:.3f}"
        goal = f"  goal {f.goal}: {'met' if f.met else 'NOT met' if f.met is False else '-'}" if f.goal else ""
        print(f"  [{f.bench}] {f.name}: {f.value}{ratio}{goal}  {f.notes}", flush=True)
