"""The gated-cell exhibit: trains RNN, LSTM and GRU, returns held-out numbers, draws PNGs."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("viz")
from demos import gated_exhibit  # noqa: E402


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_build_returns_accuracies_per_model_and_lag_and_writes_the_pngs(tmp_path):
    ex = gated_exhibit.build(str(tmp_path), steps=20, k=6)
    assert set(ex.accuracy) == {"RNN", "LSTM", "GRU"}
    assert all(sorted(acc) == [6, 12, 24] and all(0 <= a <= 1 for a in acc.values())
               for acc in ex.accuracy.values())
    assert ex.chance == 0.25 and ex.keep_bias == 3.0
    assert sorted(p.split("/")[-1] for p in ex.files) == [
        "gru_folded.png", "gru_unfolded.png", "lstm_folded.png", "lstm_unfolded.png"]
    for p in ex.files:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.dot"))
    lstm = ex.graphs["LSTM"].to_networkx()
    c_steps = sorted(d["step"] for _, d in lstm.nodes(data=True)
                     if d["name"] == "c" and d["kind"] != "param")     # not the output bias c
    assert c_steps == [0, 1, 2, 3, 4, 5]                    # c(0) .. c(5): 4 distractors drawn
    assert any(d.get("grad_norm") for _, d in lstm.nodes(data=True))   # gradients kept
    assert "RNN: lag 6:" in ex.verdict()
