"""The interactive page: one self-contained HTML file per figure, and reports as HTML.

Flow: a viz.figure.Figure (drawn from a recorded graph) -> **viz.html** -> ``x.html`` through
viz.render; viz.diagnose's Report shows itself in notebooks with :func:`report_html`.

The page holds the figure's SVG (from Graphviz), a JSON table of what each drawn node stands for
and a little inline script: no file, font or script is fetched, so the page works offline and
can be mailed. Drag to pan, wheel (or +/−) to zoom, hover or click a node to read its name, op,
shape, dtype, scope, step, value and gradient norms and source line. When the graph carries
gradients, a slider walks the time steps: that step's nodes stay lit, and the panel lists their
gradient norms (for a folded figure: each role's norm at that step).
"""
from __future__ import annotations

import html
import json
import math
from typing import Any

import graphviz

from .figure import dot_id, pipe
from .fold import fold
from .levels import choose_level
from .diagnose import report_html  # noqa: F401  (re-exported: the page and notebooks show reports alike)
from .schema import load, sort_key
from .style import fmt
from .unfolded import DEFAULT_MAX_STEPS, unfolded_graph

SHOWN = ("name", "op", "kind", "shape", "dtype", "scope", "step", "value_norm", "grad_norm",
         "src")


def page(fig: graphviz.Digraph, title: str | None = None) -> bytes:
    """The interactive page of ``fig`` as UTF-8 HTML bytes (what ``render(fig, "x.html")`` writes).

    Parameters
    ----------
    fig : viz.figure.Figure or graphviz.Digraph
        A figure from a view. A figure drawn by hand (not by a view) gets pan and zoom but no
        node details.
    title : str, optional
        The page title (default: the figure's name).

    Returns
    -------
    bytes

    Raises
    ------
    GraphvizNotFound, GraphvizError
        As :func:`viz.figure.pipe`: the SVG inside the page is Graphviz's.

    Examples
    --------
    >>> open("elman.html", "wb").write(page(viz.unfolded(G, grads=True)))   # doctest: +SKIP
    """
    svg = pipe(fig, "svg").decode("utf-8")
    svg = svg[svg.find("<svg"):]  # drop the XML prolog and DOCTYPE: they are invalid inline
    data = node_table(fig)
    name = title or fig.name or "figure"
    blob = json.dumps(data, sort_keys=True, ensure_ascii=True).replace("</", "<\\/")
    text = TEMPLATE.format(title=html.escape(name), svg=svg, data=blob, css=CSS, js=JS)
    return text.encode("utf-8", "backslashreplace")


def node_table(fig: graphviz.Digraph) -> dict[str, Any]:
    """What the page shows: ``{"nodes": {dot id: details}, "steps": [...], "view": ...}``.

    Details are the schema attributes of the node (for a folded role: of its first member) and
    ``per_step``: step -> {grad_norm, value_norm} of the node(s) it stands for at that step.
    """
    drawn_from = getattr(fig, "drawn_from", None)  # a plain graphviz.Digraph has none
    if drawn_from is None:
        return {"view": None, "nodes": {}, "steps": [], "grads": False}
    graph, view, options = drawn_from
    nodes: dict[str, dict] = {}
    if view == "folded":
        G, level, _ = choose_level(graph, options.get("level", "variable"))
        F = fold(G, level=level)
        for r in F:
            members = sorted(F.nodes[r]["members"], key=sort_key)
            if members:
                nodes[f"r{r}"] = _details(G.nodes[members[0]], [G.nodes[m] for m in members])
    elif view == "unfolded":
        G, level, _ = choose_level(graph, options.get("level", "variable"))
        V = unfolded_graph(G, level, options.get("max_steps", DEFAULT_MAX_STEPS),
                           options.get("params", "once"))
        for n, d in V.nodes(data=True):
            if "op" in d:
                nodes[dot_id(n)] = _details(d, [d])
    else:
        load(graph)  # checked like the others; a graphical model's nodes are not graph nodes
    steps = sorted({int(t) for d in nodes.values() for t in d["per_step"]})
    grads = any(v.get("grad_norm") is not None for d in nodes.values()
                for v in d["per_step"].values())
    return {"view": view, "nodes": nodes, "steps": steps, "grads": grads}


def _details(d: dict, members: list[dict]) -> dict:
    """Shown text for one drawn node; norms are formatted here, as in the figures' labels."""
    out = {k: _jsonable(d.get(k)) for k in SHOWN}
    for k in ("value_norm", "grad_norm"):
        out[k + "_text"] = None if d.get(k) is None else fmt(d[k])
    if len(members) > 1:  # a folded role: its norms are per step, listed below
        out.update(step=None, steps=len(members), value_norm=None, grad_norm=None,
                   value_norm_text=None, grad_norm_text=None)
    per: dict[str, dict] = {}
    for m in members:
        if m.get("step") is not None:
            per[str(m["step"])] = {"grad_norm": _jsonable(m.get("grad_norm")),
                                   "text": fmt(m.get("grad_norm")),
                                   "value": fmt(m.get("value_norm"))}
    out["per_step"] = per
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if x != x else ("inf" if x > 0 else "-inf")
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    return str(x)


CSS = """
html, body { margin: 0; height: 100%; font-family: Helvetica, Arial, sans-serif; }
#bar { position: fixed; top: 0; left: 0; right: 0; height: 40px; display: flex; gap: 10px;
  align-items: center; padding: 0 10px; background: #f5f5f5; border-bottom: 1px solid #ccc; }
#bar button { font-size: 15px; min-width: 30px; }
#stage { position: fixed; top: 41px; left: 0; right: 320px; bottom: 0; overflow: hidden;
  cursor: grab; background: white; }
#stage.drag { cursor: grabbing; }
#stage > svg { width: 100%; height: 100%; }
#panel { position: fixed; top: 41px; right: 0; width: 320px; bottom: 0; overflow: auto;
  border-left: 1px solid #ccc; padding: 8px 12px; box-sizing: border-box; font-size: 13px; }
#panel table { border-collapse: collapse; }
#panel td { padding: 1px 6px 1px 0; vertical-align: top; }
#panel td:first-child { color: #666; }
g.node { cursor: pointer; }
g.node.picked ellipse, g.node.picked polygon, g.node.picked path {
  stroke: #e65100 !important; stroke-width: 3px; }
svg.stepping g.node.off, svg.stepping g.edge.off { opacity: 0.18; }
"""

JS = r"""
(function () {
  const data = JSON.parse(document.getElementById('viz-data').textContent);
  const stage = document.getElementById('stage');
  const svg = stage.querySelector('svg');
  const panel = document.getElementById('panel');
  svg.removeAttribute('width'); svg.removeAttribute('height');
  const box0 = svg.viewBox.baseVal;
  const home = [box0.x, box0.y, box0.width, box0.height];
  let view = home.slice();
  function show() { svg.setAttribute('viewBox', view.join(' ')); }
  function zoom(f, cx, cy) {
    const r = svg.getBoundingClientRect();
    const px = view[0] + (cx - r.left) / r.width * view[2];
    const py = view[1] + (cy - r.top) / r.height * view[3];
    view = [px - (px - view[0]) * f, py - (py - view[1]) * f, view[2] * f, view[3] * f];
    show();
  }
  stage.addEventListener('wheel', function (e) {
    e.preventDefault(); zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, e.clientX, e.clientY);
  }, {passive: false});
  let drag = null;
  stage.addEventListener('mousedown', function (e) {
    drag = [e.clientX, e.clientY, view[0], view[1]]; stage.classList.add('drag');
  });
  window.addEventListener('mouseup', function () { drag = null; stage.classList.remove('drag'); });
  window.addEventListener('mousemove', function (e) {
    if (!drag) return;
    const r = svg.getBoundingClientRect();
    const s = Math.max(view[2] / r.width, view[3] / r.height);
    view[0] = drag[2] - (e.clientX - drag[0]) * s; view[1] = drag[3] - (e.clientY - drag[1]) * s;
    show();
  });
  function centre(f) { const r = svg.getBoundingClientRect(); zoom(f, r.left + r.width / 2, r.top + r.height / 2); }
  document.getElementById('zin').onclick = function () { centre(1 / 1.25); };
  document.getElementById('zout').onclick = function () { centre(1.25); };
  document.getElementById('fit').onclick = function () { view = home.slice(); show(); };

  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) {
    return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; }); }
  const ids = {};
  svg.querySelectorAll('g.node, g.edge').forEach(function (g) {
    const t = g.querySelector('title');
    if (!t) return;
    g.dataset.id = t.textContent;
    t.remove();  // the browser's own tooltip would show the internal id
    if (g.classList.contains('node')) ids[g.dataset.id] = g;
  });
  const rows = [['name', 'name'], ['op', 'op'], ['kind', 'kind'], ['shape', 'shape'],
    ['dtype', 'dtype'], ['scope', 'scope'], ['step', 'step'], ['steps', 'steps'],
    ['value norm', 'value_norm'], ['gradient norm', 'grad_norm'], ['source', 'src']];
  let pinned = null;
  function describe(id) {
    const d = data.nodes[id];
    if (!d) {
      const g = ids[id];
      return '<b>' + esc(g ? g.textContent.trim() : id) + '</b><p>(not a recorded node: a '
        + 'layout mark, such as the delay square ■ of a folded loop)</p>';
    }
    let h = '<table>';
    rows.forEach(function (r) {
      let v = d[r[1]];
      if (v === null || v === undefined || v === '') return;
      if (r[1] === 'shape') v = '(' + v.join(', ') + ')';
      else if (r[1].endsWith('norm')) v = d[r[1] + '_text'];
      h += '<tr><td>' + r[0] + '</td><td>' + esc(v) + '</td></tr>';
    });
    h += '</table>';
    const steps = Object.keys(d.per_step).map(Number).sort(function (a, b) { return a - b; });
    if (steps.length > 1) {
      h += '<p>per step:</p><table><tr><td>t</td><td>‖value‖</td><td>‖∂L/∂·‖</td></tr>';
      steps.forEach(function (t) {
        const p = d.per_step[t];
        h += '<tr><td>' + t + '</td><td>' + esc(p.value) + '</td><td>' + esc(p.text) + '</td></tr>';
      });
      h += '</table>';
    }
    return h;
  }
  function pick(id) {
    Object.values(ids).forEach(function (g) { g.classList.remove('picked'); });
    if (id && ids[id]) ids[id].classList.add('picked');
  }
  Object.entries(ids).forEach(function ([id, g]) {
    g.addEventListener('mouseenter', function () { if (!pinned) panel.innerHTML = describe(id); });
    g.addEventListener('click', function (e) {
      e.stopPropagation(); pinned = id; pick(id); panel.innerHTML = describe(id);
    });
    g.addEventListener('mousedown', function (e) { e.stopPropagation(); });
  });
  svg.addEventListener('click', function () { pinned = null; pick(null); });

  const slider = document.getElementById('step');
  const label = document.getElementById('steplabel');
  if (!data.grads || data.steps.length === 0) {
    slider.parentNode.style.display = 'none';
  } else {
    slider.max = data.steps.length;  // 0: all steps; k: the k-th step
    slider.oninput = function () {
      const k = Number(slider.value);
      if (k === 0) {
        svg.classList.remove('stepping'); label.textContent = 'all steps';
        if (!pinned) panel.innerHTML = '<p>Hover or click a node.</p>';
        return;
      }
      const t = String(data.steps[k - 1]);
      svg.classList.add('stepping'); label.textContent = 'step ' + t;
      const lit = {};
      let h = '<p><b>step ' + esc(t) + '</b>: gradient norms</p><table>';
      Object.entries(ids).forEach(function ([id, g]) {
        const d = data.nodes[id];
        const on = d && d.per_step[t] !== undefined;
        g.classList.toggle('off', !on);
        if (on) {
          lit[id] = true;
          const who = (d.name || d.op) + (d.scope ? ' (' + d.scope + ')' : '');
          h += '<tr><td>' + esc(who) + '</td><td>' + esc(d.per_step[t].text) + '</td></tr>';
        }
      });
      svg.querySelectorAll('g.edge').forEach(function (g) {
        const ends = g.dataset.id.split('->');
        g.classList.toggle('off', !(lit[ends[0]] || lit[ends[1]]));
      });
      if (!pinned) panel.innerHTML = h + '</table>';
    };
  }
  window.vizPage = {data: data, zoom: centre, view: function () { return view.slice(); }};
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body>
<div id="bar"><b>{title}</b>
<button id="zin" title="zoom in">+</button><button id="zout" title="zoom out">−</button>
<button id="fit" title="whole figure">fit</button>
<span><input id="step" type="range" min="0" max="0" value="0"> <span id="steplabel">all
steps</span></span>
<span style="color:#666">drag to pan, wheel to zoom, click a node</span></div>
<div id="stage">{svg}</div>
<div id="panel"><p>Hover or click a node.</p></div>
<script type="application/json" id="viz-data">{data}</script>
<script>{js}</script>
</body></html>
"""
