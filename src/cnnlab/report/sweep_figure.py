"""report.png: val loss and val top-1 against epoch, one colour per setting, a band over seeds.

A setting is what a job tried apart from its seed or fold (report.sweep's
`setting_of`). With several seeds the line is their mean and the band spans
their minimum to maximum at each epoch. `x="step"` or `x="wall_s"` draws train and
val loss against optimizer updates or seconds instead (the gd_variants
study: batch, stochastic and mini-batch descent by updates and by time).
"""

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PANELS = {  # x axis -> the (split, metric) of each panel
    "epoch": (("val", "loss"), ("val", "top1")),
    "step": (("train", "loss"), ("val", "loss")),
    "wall_s": (("train", "loss"), ("val", "loss")),
}
X_LABELS = {"epoch": "epoch", "step": "optimizer updates", "wall_s": "wall time (s), compilation included"}


PANEL_HEIGHT = 4.5  # inches: the plots keep it whatever the legend below them needs
LEGEND_ROW = 0.22  # inches per legend row at fontsize "small"
LINESTYLES = ("-", "--", ":", "-.")  # past 20 settings the colours repeat; the line style does not


def plot(jobs: list, settings: list[tuple], path: Path, x: str = "epoch") -> None:
    """Draw the finished jobs of a sweep (report.sweep's JobResult), `settings[i]` that of `jobs[i]`."""
    fig = figure(jobs, settings, x)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure(jobs: list, settings: list[tuple], x: str = "epoch"):
    """The report figure: two panels above a legend of one entry per setting."""
    if x not in PANELS:
        raise ValueError(f"the x axis must be one of {', '.join(PANELS)}, got {x!r}")
    groups: dict[tuple, list] = defaultdict(list)
    for job, setting in zip(jobs, settings):
        if job.finished and job.records:
            groups[setting].append(job)
    labels = []
    for setting, members in groups.items():
        label = ", ".join(f"{k}={v}" for k, v in setting) or "all jobs"
        labels.append(label + (f" ({len(members)} runs)" if len(members) > 1 else ""))
    longest = max((len(label) for label in labels), default=0)
    ncol = 3 if longest <= 45 else 2 if longest <= 70 else 1
    legend_height = LEGEND_ROW * -(-len(labels) // ncol) + 0.3
    fig, axes = plt.subplots(1, 2, figsize=(12, PANEL_HEIGHT + legend_height))
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for n, (members, label) in enumerate(zip(groups.values(), labels)):
        style = {"color": colours(n % colours.N), "linestyle": LINESTYLES[n // colours.N % len(LINESTYLES)]}
        for ax, (split, metric) in zip(axes, PANELS[x]):
            _draw(ax, members, split, metric, x, style, label)
    for ax, (split, metric) in zip(axes, PANELS[x]):
        name = f"{split} {'top-1' if metric == 'top1' else metric}"
        ax.set(xlabel=X_LABELS[x], ylabel=name, title=name)
        ax.grid(alpha=0.3)
        if x == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        elif _spans_decades(ax):
            ax.set_xscale("log")  # batch GD makes one update an epoch, SGD thousands
    if any(len(members) > 1 for members in groups.values()):
        fig.suptitle("lines: mean over seeds (or folds); bands: their minimum to maximum", fontsize="small")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, legend_height / (PANEL_HEIGHT + legend_height), 1, 1))
    return fig


def _draw(ax, members: list, split: str, metric: str, x: str, style: dict, label: str) -> None:
    """The mean over seeds of `split` `metric` per epoch, and the min-max band."""
    series = [{r["epoch"]: (r[x], r[metric]) for r in job.records if r["split"] == split} for job in members]
    epochs = sorted(set.intersection(*(set(s) for s in series)))  # where every seed has a value
    if not epochs:
        return
    xs = np.array([[s[e][0] for e in epochs] for s in series]).mean(axis=0)
    ys = np.array([[s[e][1] for e in epochs] for s in series])  # (seeds, epochs)
    ax.plot(xs, ys.mean(axis=0), marker="o" if len(epochs) < 30 else None, markersize=3, label=label, **style)
    if len(series) > 1:
        ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=style["color"], alpha=0.2, linewidth=0)


def _spans_decades(ax) -> bool:
    xs = np.concatenate([line.get_xdata() for line in ax.get_lines()] or [np.zeros(0)])
    xs = xs[xs > 0]
    return xs.size > 0 and xs.max() / xs.min() > 100
