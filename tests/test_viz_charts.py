"""viz.charts: gradient_chart returns a Figure, leaves the backend alone, and reads clearly."""
from __future__ import annotations

import os
import sys

import pytest

import flow_graphs as fg
import graphs
import viz

pytest.importorskip("matplotlib")


def drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    return fig.canvas.get_renderer()


def lines_of(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata())]


def test_returns_a_figure_saves_on_request_and_never_sets_the_backend(tmp_path, monkeypatch):
    import matplotlib
    from matplotlib.figure import Figure

    def forbidden(*a, **k):
        raise AssertionError("gradient_chart called matplotlib.use()")
    monkeypatch.setattr(matplotlib, "use", forbidden)
    before = matplotlib.get_backend()
    g, _, _ = fg.elman(T=12, flow=False)
    fig = viz.gradient_chart(g, tmp_path / "sub" / "g.png", title="elman")
    assert isinstance(fig, Figure) and matplotlib.get_backend() == before
    data = (tmp_path / "sub" / "g.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert isinstance(viz.gradient_chart(g), Figure)                 # no path: nothing written
    assert "UNDETERMINED" in fig._suptitle.get_text()          # a loss at every step, no flow


def test_integer_step_ticks_legends_outside_and_distinct_styles():
    g, _, _ = fg.elman(T=7, B=1, flow=False)                        # one-hot: ∇U(t) = ∇b(t)
    fig = viz.gradient_chart(g)
    r = drawn(fig)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ax.get_title()
        leg = ax.get_legend()
        if leg is not None:                                          # beside the data, not on it
            assert leg.get_window_extent(r).x0 >= ax.get_window_extent(r).x1 - 1
        styles = [(ln.get_linestyle(), ln.get_marker()) for ln in lines_of(ax)
                  if ln.get_marker() not in ("None", None, "")]
        assert len(styles) == len(set(styles)), ax.get_title()
    params = next(ax for ax in fig.axes if "shared parameters" in ax.get_title())
    labels = [ln.get_label() for ln in lines_of(params)]
    assert any("(identical)" in lb and " = " in lb for lb in labels), labels


def test_titles_use_the_variables_own_name():
    fig = viz.gradient_chart(graphs.dynamical(8, grads=True))
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "∂L/∂s(t)" in titles and "∂L/∂h" not in titles


def test_separate_timelines_get_separate_panels():
    fig = viz.gradient_chart(fg.seq2seq(flow=False))
    norms = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("‖∂L/∂h")
             and "relative" not in ax.get_title()]
    assert len(norms) == 2
    assert any("encoder" in t for t in norms) and any("decoder" in t for t in norms)
    bi = viz.gradient_chart(fg.bidirectional())                     # one axis: h and g together
    assert any("∂L/∂h(t)‖, ‖∂L/∂g(t)" in ax.get_title() for ax in bi.axes)


def test_a_tree_is_charted_by_height_and_teacher_forcing_has_no_gain():
    fig = viz.gradient_chart(fg.tree())
    assert any(ax.get_xlabel() == "tree height" for ax in fig.axes)
    assert not any(ax.get_xlabel() == "time step t" and "∂L/∂h" in ax.get_title()
                   for ax in fig.axes)
    jordan = viz.gradient_chart(fg.jordan_teacher())
    titles = " ".join(ax.get_title() for ax in jordan.axes)
    assert "gain" not in titles and "∂L/∂h" not in titles
    assert "NO RECURRENCE" in jordan._suptitle.get_text()


def test_flow_and_spectra_panels_match_the_report():
    g, f, _ = fg.elman(T=30, scale=0.5)
    report = viz.diagnose(g)
    fig = viz.gradient_chart(g)
    flow_ax = next(ax for ax in fig.axes if "relative to its local value" in ax.get_title())
    (line,) = [ln for ln in lines_of(flow_ax) if ln.get_label().startswith("h, from")]
    assert list(line.get_ydata()) == [r for _, r in report.findings[0].profile]
    assert any(f"horizon: {report.findings[0].horizon} steps" == ln.get_label()
               for ln in flow_ax.get_lines())
    sig_ax = next(ax for ax in fig.axes if ax.get_title().startswith("Jacobian spectra"))
    ys = lines_of(sig_ax)[0].get_ydata()
    assert list(ys) == pytest.approx(list(f["h"].sigma[1:]))


def test_refuses_a_graph_without_gradients_and_says_when_nothing_flows():
    with pytest.raises(ValueError, match="keep_grads=True"):
        viz.gradient_chart(graphs.elman(3))
    b = graphs.Builder()
    b.affine([("W", b.input("x"))], name="h")  # no step tags: a feed-forward net
    graphs.with_grads(b.G)
    with pytest.raises(ValueError, match="tg.step"):
        viz.gradient_chart(b.G)


def test_notebook_shows_charts_inline_and_plt_show_still_works(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cells = [
        f"import sys\nsys.path[:0] = [{root!r}, {os.path.join(root, 'tests')!r}]\n"
        "import flow_graphs as fg, viz\nimport matplotlib.pyplot as plt",
        "g, f, m = fg.elman(T=10)\nviz.gradient_chart(g)",            # displayed inline
        "viz.flow_map(g)",
        "plt.plot([0, 1], [1, 0])\nplt.show()",                      # pyplot still draws
        "import matplotlib\nprint(matplotlib.get_backend())",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outs = [c["outputs"] for c in nb.cells]
    for k in (1, 2, 3):
        assert any("image/png" in o.get("data", {}) for o in outs[k]), (k, outs[k])
    backend = "".join(o.get("text", "") for o in outs[4]).strip().lower()
    assert "inline" in backend, backend
    assert sys.executable  # the kernel is this interpreter's ipykernel


def test_parameter_legends_use_the_label_rules_names():
    fig = viz.gradient_chart(fg.deep())                            # two layers' W, U, b
    params = next(ax for ax in fig.axes if "shared parameters" in ax.get_title())
    labels = " ".join(ln.get_label() for ln in lines_of(params))
    assert "∇W_1(t)" in labels and "∇W_2(t)" in labels and "/" not in labels, labels
    assert set(viz.param_contributions(fg.deep())) >= {"W_1", "W_2", "U_1", "U_2"}
    spectra = [ax for ax in fig.axes if "Jacobian spectra" in ax.get_title()]
    assert sorted(ax.get_title()[-3:] for ax in spectra) == ["h_1", "h_2"]
    assert any("ρ(W_1)" in ln.get_label() for ax in spectra for ln in ax.get_lines())
    names = {d["name"] for _, d in viz.load(fg.seq2seq(flow=False)).nodes(data=True)}
    keys = set(viz.param_contributions(fg.seq2seq(flow=False)))
    assert {"W_enc", "W_dec"} <= keys and "W_enc" not in names     # the rule's, as drawn


def test_a_long_title_is_wrapped_to_the_figure_width():
    pytest.importorskip("matplotlib")
    long = "Teacher forcing: train time and test time, with a title longer than one panel"
    fig = viz.gradient_chart(graphs.elman(4, grads=True), title=long)
    text = fig._suptitle.get_text()
    assert "\n" in text and text.replace("\n", " ").startswith(long)
