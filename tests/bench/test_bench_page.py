"""docs/performance.md: a run of some benchmarks replaces their rows and keeps the others."""

from bench import common, run


def page(figures, runs, notes=""):
    return run.render(figures, {"cpu": "test"}, runs, notes)


def test_a_subset_run_replaces_its_rows_and_keeps_the_rest():
    first = run.Run("python -m bench.run", "2026-11-22 22:54", ["1", "5"])
    old = [
        common.Figure("1", "overhead", "0.9", "128", "ratio >= 0.97", 0.9, False, "a | b"),
        common.Figure("5", "time to 91%", "not measured", "128", "faster than PyTorch", None, None, "skipped"),
    ]
    notes = "## Notes on this run\n\n- LeNet-5 is small."
    figures, runs, kept_notes = run.read_page(page(old, [first], notes))
    assert (figures, runs, kept_notes) == (old, [first], notes)  # read back as written, escaped "|" included

    tta = common.Figure("5", "time to 91%", "60 s vs 90 s", "128", "faster than PyTorch", 0.667, True, "curve")
    second = run.Run("python -m bench.run --only 5 --with-tta", "2026-11-23 02:00", ["5"])
    figures, runs = run.merge(figures, runs, [tta], second)
    text = page(figures, runs, kept_notes)
    assert run.read_page(text) == ([old[0], tta], [first._replace(ids=["1"]), second], notes)
    assert "- `python -m bench.run --only 5 --with-tta` on 2026-11-23 02:00: 5" in text
    assert "not measured" not in text

