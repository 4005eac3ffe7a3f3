"""`cnnlab-trajectories` writes one PNG per surface, with every optimizer's path on it."""

import numpy as np
import pytest

from cnnlab.cli import trajectories as cli
from cnnlab.report import trajectories

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_writes_a_png_per_surface(tmp_path, capsys):
    cli.main(["--out", str(tmp_path / "pictures"), "--steps", "20"])
    printed = capsys.readouterr().out.split()
    for surface in ("ravine", "rosenbrock", "saddle", "beale"):
        png = tmp_path / "pictures" / f"{surface}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        assert png.stat().st_size > 10_000  # a drawn figure, not an empty canvas
        assert str(png) in printed


@pytest.mark.parametrize("surface", trajectories.SURFACES, ids=lambda s: s.name)
def test_every_optimizer_makes_progress_on_every_surface(surface):
    """The per-surface learning rates are sane: no path diverges, each one lowers the loss."""
    paths = trajectories.surface_paths(surface, trajectories.OPTIMIZERS, steps=300)
    for name, (path, losses) in paths.items():
        assert path.shape == (301, 2) and losses.shape == (301,)
        assert np.all(np.isfinite(losses)), f"{name} diverged on {surface.name}"
        halfway_down = losses[0] - 0.5 * (losses[0] - surface.minimum_value)
        assert losses[-1] < halfway_down, f"{name} stalled on {surface.name}"


def test_unknown_optimizer_is_refused(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--optimizers", "adamm"])
    assert "invalid choice: 'adamm'" in capsys.readouterr().err
