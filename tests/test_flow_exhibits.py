"""demos.flow_exhibits and demos.vanishing: the gradient-flow sections write real figures and
numbers that agree with viz.diagnose (short runs: the numbers are not the gallery's)."""
from __future__ import annotations

import pytest

import viz
from tinygraph import nn, tasks

pytest.importorskip("matplotlib")

from demos import flow_exhibits as fx  # noqa: E402
from demos import vanishing  # noqa: E402


def test_elman_flow_section_writes_heat_maps_and_verdicts(tmp_path):
    V = len(tasks.make_char_data(0)["vocab"])
    sec = fx.elman_flow(str(tmp_path), lengths=(4, 12), model=nn.RNN(V, 8, V, rng=0))
    for name, _ in sec.figures:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert [f for f, _ in sec.figures][::2] == ["flow_elman_T4_map.png", "flow_elman_T12_map.png"]
    report = viz.diagnose(str(tmp_path / "flow_elman_T12.json"))
    assert sec.data[12]["verdict"] == report.verdict
    assert sec.data[12]["horizon"] == report.findings[0].horizon
    assert "gradient flow:" in sec.notes[-1] and "tg.flow" in sec.notes[-1]


def test_exploding_section_trains_both_ways(tmp_path):
    sec = fx.exploding(str(tmp_path), steps=2, T=30)
    assert sec.data["verdict"] == "exploding"
    runs = sec.data["runs"]
    assert len(runs) == 2 and all(len(r["norms"]) == 2 for r in runs.values())
    assert (tmp_path / "flow_exploding_training.png").exists()
    assert sec.notes[0].startswith("gradient flow: EXPLODING")


def test_long_range_section_reports_horizon_beside_accuracy(tmp_path):
    sec = fx.long_range(str(tmp_path), lengths=(3, 8), steps=3)
    (T3, acc3, h3, s3, _), (T8, _, h8, s8, _) = sec.data["rows"]
    assert (T3, s3, T8, s8) == (3, 2, 8, 7) and 0.0 <= acc3 <= 1.0
    assert h3 <= s3 and h8 <= s8
    assert "needs  horizon  accuracy" in sec.notes[0]


def test_vanishing_run_exports_the_flow_of_its_one_loss():
    run = vanishing.train(6, steps=2)
    (v,) = run.graph.attrs["flow"]["variables"]
    assert len(v["F"]) == 1 and v["steps"] == list(range(1, 7))
    f = viz.diagnose(run.graph).findings[0]
    assert f.source == "flow" and f.span == 5


def test_flow_cost_is_measured():
    cost = fx.flow_cost(lengths=(20,), hidden=4)
    assert cost[20]["F_sweeps"] == 20 and cost[20]["jacobian_sweeps"] == 4
    assert cost[20]["F"] > 0 and cost[20]["backward"] > 0
