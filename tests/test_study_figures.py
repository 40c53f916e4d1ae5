"""The study's figures cannot be misread: lesion points per seed with each seed's own
baseline and a note on blocks that cannot be deleted; the white-noise line of the shattered
figure at -1/(N-1); gradient flow drawn from the output to the input, every panel labelled."""

from __future__ import annotations

import numpy as np
import pytest

from skiplab.studies import figures


@pytest.fixture
def captured(monkeypatch):
    """The matplotlib figure each plot function draws (instead of only its PNG)."""
    got = []
    save = figures.save_figure

    def keep(fig, path):
        got.append(fig)
        return save(fig, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    return got


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def lesion_seed(key: str, family: str, seed: int, baseline: float, skip: set[int], units: int = 8) -> dict:
    single = [
        dict(index=i, accuracy=baseline - 0.05 * (i % 3), downsampling=False) for i in range(units) if i not in skip
    ]
    return dict(
        key=key,
        family=family,
        seed=seed,
        units=units,
        chance=0.1,
        baseline=dict(accuracy=baseline),
        single=single,
        random=[dict(k=k, accuracy=baseline - 0.05 * k) for k in (1, 2)],
    )


def test_lesion_figure_marks_blocks_that_cannot_be_deleted(captured, tmp_path):
    per_seed = [lesion_seed("plain-20", "plain", s, 0.5 + 0.1 * s, skip={3, 6}) for s in range(3)]
    per_seed += [lesion_seed("resnet-20", "resnet", s, 0.7, skip=set()) for s in range(3)]
    figures.plot_lesion(per_seed, tmp_path / "lesion.png")
    left, _ = captured[-1].axes
    texts = " ".join(legend_texts(left))
    assert "plain-20: no point at blocks 4, 7" in texts and "resnet-20: no point" not in texts
    assert "points: each seed" in texts and "band" not in texts
    # the mean line breaks at the missing blocks (NaN), and each seed's baseline is drawn at x = 0
    mean_line = next(line for line in left.get_lines() if line.get_label().startswith("plain-20 (line"))
    y = np.asarray(mean_line.get_ydata(), dtype=float)
    assert np.isnan(y[4]) and np.isnan(y[7]) and not np.isnan(y[1])
    seed_points = [line for line in left.get_lines() if line.get_linestyle() == "None"]
    baselines = sorted(float(line.get_ydata()[0]) for line in seed_points[:3])
    assert baselines == pytest.approx([50.0, 60.0, 70.0])
    assert (tmp_path / "lesion.png").stat().st_size > 1000


def test_shattered_figure_draws_white_noise_at_the_floor(captured, tmp_path):
    from skiplab.studies.shattered import white_noise_floor

    floor = white_noise_floor(128)
    curve = [1.0, 0.5, 0.2] + [floor] * 30
    results = [
        dict(
            model=f"{f}-20",
            family=f,
            depth=20,
            stage="init",
            autocorrelation=curve,
            autocorrelation_seeds=[curve, curve],
        )
        for f in ("plain", "resnet")
    ]
    for given in (floor, None):  # given, or worked out from the curves' 33 lags (N = 128)
        figures.plot_autocorrelation(results, tmp_path / "shattered.png", floor=given)
        ax = captured[-1].axes[0]
        noise = next(line for line in ax.get_lines() if line.get_label().startswith("white noise"))
        assert noise.get_ydata()[0] == pytest.approx(floor) and "N = 128" in noise.get_label()
        assert not any(line.get_label().startswith("0 (white noise)") for line in ax.get_lines())


def test_gradient_flow_runs_from_the_output_to_the_input_with_labels_on_every_panel(captured, tmp_path):
    rows = []
    for family, norm in (("plain", True), ("resnet", True), ("plain", False)):
        for seed in range(2):
            grow = np.geomspace(1e-3, 1e-1, 6)[::-1]  # largest at block 1: grows towards the input
            rows.append(
                dict(
                    model=f"{family}-8-s{seed}",
                    key=f"{family}-8" + ("" if norm else "-nobn"),
                    family=family,
                    seed=seed,
                    batch=0,
                    norm=norm,
                    stage="init",
                    layers=[[i, v] for i, v in enumerate(grow)],
                    blocks=[[i, v] for i, v in enumerate(grow)],
                )
            )
    figures.plot_gradient_flow(rows, tmp_path / "gradient_flow.png")
    axes = captured[-1].axes
    assert len(axes) == 4
    for ax in axes:
        assert ax.xaxis_inverted() and ax.get_ylabel()
        assert any(t.get_text() for t in ax.get_yticklabels()) or ax.yaxis.get_tick_params()["labelleft"]
    assert "exploding" in axes[0].get_title() and "from the output" in axes[-1].get_xlabel()
