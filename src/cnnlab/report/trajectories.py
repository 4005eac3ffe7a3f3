"""Optimizer paths on 2-D test surfaces: the lecture's "SGD without and with momentum"
picture, for every optimizer.

Each surface is a loss of two parameters with a hand-picked start, plotting
window and one learning rate per optimizer (the other hyperparameters are each
optimizer's defaults). The learning rates are chosen so that every path shows
its method's character within a few hundred steps, not tuned to win:

- ravine, ½(x² + 25y²): condition number 25. SGD at η = 0.07 (ηλ_max = 1.75)
  zig-zags across the valley; momentum and NAG at η = 0.003 glide along it;
  the adaptive methods rescale the two axes and head almost straight in.
- Rosenbrock, (1 − x)² + 100(y − x²)²: a curved, flat-bottomed valley. SGD and
  momentum must stay at η ≤ 0.001 to remain stable on the steep walls, so they
  crawl along the valley floor.
- saddle, x² − y² + y⁴/4: a saddle at the origin between minima at (0, ±√2),
  started almost exactly on the ridge line y = 0. Plain gradient steps escape
  only as fast as the tiny y-gradient grows; the methods that divide by the
  gradient's size escape at once.
- Beale: the standard test function with its minimum at (3, 0.5) in a narrow,
  curved valley.

The learning rates are in `SURFACES`. Adadelta needs η of 3 to 10 here: its
first steps are about √ε in size whatever η, and since its steps never shrink it
ends jittering around the minimum rather than settling, as the lecture warns.

`plot_surface` returns a matplotlib `Figure` built without pyplot, so nothing
here needs a display or touches matplotlib's global backend; the command line
is `cnnlab-trajectories` (`cnnlab.cli.trajectories`).
"""

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from cnnlab import optim

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam")

Loss = Callable[[jax.Array], jax.Array]  # (2,) -> ()
Paths = dict[str, tuple[np.ndarray, np.ndarray]]  # optimizer -> (path (steps+1, 2), losses (steps+1,))


@dataclasses.dataclass(frozen=True)
class Surface:
    """A 2-D test loss and how to draw the optimizers' paths on it."""

    name: str
    formula: str
    loss: Loss
    minimum: tuple[float, float]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    learning_rates: dict[str, float]

    @property
    def minimum_value(self) -> float:
        return float(self.loss(jnp.asarray(self.minimum)))


def _ravine(p):
    return 0.5 * (p[0] ** 2 + 25.0 * p[1] ** 2)


def _rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def _saddle(p):
    return p[0] ** 2 - p[1] ** 2 + 0.25 * p[1] ** 4


def _beale(p):
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


SURFACES = (
    Surface(
        "ravine", "½(x² + 25y²)", _ravine, minimum=(0.0, 0.0), start=(-4.0, 1.0),
        xlim=(-4.5, 1.0), ylim=(-1.5, 1.5),
        learning_rates={"sgd": 0.07, "momentum": 0.003, "nesterov": 0.003, "adagrad": 0.3,
                        "rmsprop": 0.03, "adadelta": 10.0, "adam": 0.1},
    ),
    Surface(
        "rosenbrock", "(1 − x)² + 100(y − x²)²", _rosenbrock, minimum=(1.0, 1.0), start=(-1.2, 1.0),
        xlim=(-2.0, 2.0), ylim=(-1.0, 3.0),
        learning_rates={"sgd": 0.001, "momentum": 0.001, "nesterov": 0.001, "adagrad": 0.5,
                        "rmsprop": 0.03, "adadelta": 10.0, "adam": 0.1},
    ),
    Surface(
        "saddle", "x² − y² + y⁴/4", _saddle, minimum=(0.0, float(np.sqrt(2.0))), start=(-1.5, 1e-3),
        xlim=(-2.0, 2.0), ylim=(-2.0, 2.0),
        learning_rates={"sgd": 0.03, "momentum": 0.003, "nesterov": 0.003, "adagrad": 0.1,
                        "rmsprop": 0.01, "adadelta": 3.0, "adam": 0.03},
    ),
    Surface(
        "beale", "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²", _beale,
        minimum=(3.0, 0.5), start=(1.0, 1.5), xlim=(-0.5, 4.0), ylim=(-1.0, 2.0),
        learning_rates={"sgd": 0.01, "momentum": 0.001, "nesterov": 0.001, "adagrad": 1.0,
                        "rmsprop": 0.01, "adadelta": 3.0, "adam": 0.1},
    ),
)
SURFACES_BY_NAME = {surface.name: surface for surface in SURFACES}


def _traced_path(tx: optax.GradientTransformation, loss: Loss, start: jax.Array, steps: int):
    """The parameters and the loss at `start` and after each of `steps` updates: (steps+1, 2), (steps+1,)."""
    value_and_grad = jax.value_and_grad(loss)

    def step(carry, _):
        params, state = carry
        value, grads = value_and_grad(params)
        updates, state = tx.update(grads, state, params, value=value)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    _, path = jax.lax.scan(step, (start, tx.init(start)), None, length=steps)
    path = jnp.concatenate([start[None], path])  # (steps+1, 2)
    return path, jax.vmap(loss)(path)


def surface_paths(surface: Surface, optimizers: Sequence[str], steps: int) -> Paths:
    """Every chosen optimizer's path and losses on `surface`, at the surface's learning rate for it."""
    transforms = {name: optim.create(name, learning_rate=surface.learning_rates[name]) for name in optimizers}

    @jax.jit  # one compilation for all the optimizers of a surface
    def all_paths(start):
        return {name: _traced_path(tx, surface.loss, start, steps) for name, tx in transforms.items()}

    paths = all_paths(jnp.asarray(surface.start, jnp.float32))  # keys come back sorted
    return {name: tuple(np.asarray(a) for a in paths[name]) for name in optimizers}


def _contour_levels(surface: Surface, grid_values: np.ndarray) -> np.ndarray:
    """Levels log-spaced above the minimum, so that the flat valley floors of Rosenbrock and Beale show."""
    gap = grid_values - surface.minimum_value
    top = np.percentile(gap, 95)
    return surface.minimum_value + np.logspace(-3, np.log10(max(top, 1e-2)), 25)


def plot_surface(surface: Surface, paths: Paths) -> Figure:
    """Contours with one path per optimizer (left), loss above the minimum against step (right)."""
    figure = Figure(figsize=(13, 5.5), layout="tight")
    contour_axes, loss_axes = figure.subplots(1, 2, width_ratios=(1.2, 1))
    xs = np.linspace(*surface.xlim, 300)
    ys = np.linspace(*surface.ylim, 300)
    grid = np.stack(np.meshgrid(xs, ys))  # (2, 300, 300)
    grid_values = np.asarray(jax.vmap(jax.vmap(surface.loss, in_axes=1), in_axes=1)(grid))  # (300, 300)
    levels = _contour_levels(surface, grid_values)
    contour_axes.contour(xs, ys, grid_values, levels=levels, colors="0.6", linewidths=0.6,
                         negative_linestyles="solid")

    for name, (path, losses) in paths.items():
        finite = np.all(np.isfinite(path), axis=1)  # a diverging path ends where it leaves the floats
        (line,) = contour_axes.plot(path[finite, 0], path[finite, 1], lw=1.4, label=name)
        contour_axes.plot(*path[finite][-1], "o", color=line.get_color(), ms=4)
        # f − f* on a log axis: floored at 1e-12 where the path hits the minimum exactly
        loss_axes.plot(np.maximum(losses - surface.minimum_value, 1e-12), color=line.get_color(), label=name)

    contour_axes.plot(*surface.start, "ks", ms=6, label="start")
    contour_axes.plot(*surface.minimum, "k*", ms=12, label="minimum")
    contour_axes.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y",
                     title=f"{surface.name}: {surface.formula}")
    contour_axes.legend(fontsize=8, loc="best")
    loss_axes.set(yscale="log", xlabel="step", ylabel="f − f*", title="loss above the minimum")
    loss_axes.grid(True, which="both", alpha=0.3)
    return figure


def write_figures(
    out_dir: Path, optimizers: Sequence[str] = OPTIMIZERS, steps: int = 500,
    surfaces: Sequence[str] = tuple(SURFACES_BY_NAME),
) -> list[Path]:
    """One PNG per surface, `<out_dir>/<surface>.png`; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in surfaces:
        surface = SURFACES_BY_NAME[name]
        path = out_dir / f"{surface.name}.png"
        plot_surface(surface, surface_paths(surface, optimizers, steps)).savefig(path, dpi=110)
        written.append(path)
    return written
