"""viz.flowmap: the per-loss-term flow heat map, one panel per recurrent variable."""
from __future__ import annotations

import numpy as np
import pytest

import flow_graphs as fg
import viz

pytest.importorskip("matplotlib")


def panels(fig):
    return [ax for ax in fig.axes if ax.images]


def test_heat_map_is_F_on_a_log_scale_with_a_colour_bar(tmp_path):
    from matplotlib.colors import LogNorm
    g, f, _ = fg.elman(T=20, scale=0.5)
    fig = viz.flow_map(g, tmp_path / "f.png", title="elman")
    (ax,) = panels(fig)
    im = ax.images[0]
    assert isinstance(im.norm, LogNorm)
    np.testing.assert_allclose(np.ma.filled(im.get_array(), 0.0), f["h"].F)
    assert len(fig.axes) == 2                                         # the panel + its colour bar
    assert "∂L(τ′)/∂h(t)" in fig.axes[1].get_ylabel()
    assert ax.get_xlabel() == "state step t" and ax.get_ylabel() == "loss term τ′"
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_horizon_ticks_and_title_agree_with_diagnose(tmp_path):
    g, _, _ = fg.elman(T=30, scale=0.5)
    g.save(tmp_path / "g.json")
    fig = viz.flow_map(str(tmp_path / "g.json"))                      # from saved JSON
    finding = viz.diagnose(g).findings[0]
    (ax,) = panels(fig)
    assert f"horizon {finding.horizon} steps" in ax.get_title()
    ticks = ax.collections[0].get_offsets()
    last = [x for x, y in ticks if y == 30]
    assert last == [30 - finding.horizon - 0.5]                       # between h(t) and h(t+1)


def test_encoder_and_decoder_get_their_own_panels():
    fig = viz.flow_map(fg.seq2seq())
    titles = [ax.get_title() for ax in panels(fig)]
    assert len(titles) == 2 and "encoder" in titles[0] and "decoder" in titles[1]
    bi = viz.flow_map(fg.bidirectional())
    assert [ax.get_title().split(" ")[2] for ax in panels(bi)] == ["h(t)", "g(t)"]


def test_without_flow_it_says_how_to_export_it():
    g, _, _ = fg.elman(T=5, flow=False)
    with pytest.raises(ValueError, match="flow=tg.flow"):
        viz.flow_map(g)
