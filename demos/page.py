"""index.html of the gallery: a table of contents, then one section per figure, in the book's order.

Flow: demos.gallery (cards of file names and notes) -> **demos.page** -> out/index.html.
A plain static page: no scripts, images referenced by relative path, so ``out/`` can be copied
anywhere or opened straight from disk. The page shows the PNGs Graphviz rendered (so the text
sits exactly where Graphviz put it, in every browser: an SVG's text is re-set in the browser's
own font, which moves superscripts); each picture links to its interactive page (viz.render's
``.html``: pan, zoom, hover a node for its details, a slider over the steps) and to its SVG,
full size, with a tooltip on every node and edge.
"""
from __future__ import annotations

import os
from html import escape

PNG_SCALE = 2  # viz renders PNGs at 144 dpi: shown at half their pixels they are 72 dpi, sharp

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
nav ol { columns: 2; font-size: 0.95em; }
section { border-top: 1px solid #ddd; padding: 1em 0; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-end; }
figure { margin: 0; max-width: 100%; }
figure.wide { flex-basis: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f8fa; padding: 0.6em; font-size: 0.8em; white-space: pre-wrap; }
"""


def png_size(path: str) -> tuple[int, int] | None:
    """(width, height) in pixels from a PNG's header, or None for anything else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def has_density(path: str) -> bool:
    """Whether a PNG says its own resolution (a pHYs chunk before the image data): matplotlib
    writes one (its charts are shown at their pixel size); Graphviz does not (its pictures are
    rendered at PNG_SCALE times 72 dpi and shown at 1/PNG_SCALE)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
    except OSError:
        return False
    i = 8
    while i + 8 <= len(data):
        n, kind = int.from_bytes(data[i:i + 4], "big"), data[i + 4:i + 8]
        if kind == b"pHYs":
            return True
        if kind == b"IDAT":
            return False
        i += 12 + n
    return False


def _figure(out: str, name: str, caption: str) -> str:
    """One picture: the PNG at its natural size (max the page width), linked to its
    interactive page (pan, zoom, hover, a slider over the steps) when there is one, else to
    its SVG; the caption links the SVG too."""
    size = png_size(os.path.join(out, name))
    stem = name[:-4]
    html, svg = (stem + ext if os.path.exists(os.path.join(out, stem + ext)) else None
                 for ext in (".html", ".svg"))
    target = html or svg or name
    dims = ""
    if size is not None and name.endswith(".png") and not has_density(os.path.join(out, name)):
        dims = f" width='{size[0] // PNG_SCALE}' height='{size[1] // PNG_SCALE}'"
    wide = " class='wide'" if caption.startswith("every op") else ""
    hint = ""
    if html:
        hint = " (click: interactive page, hover for details"
        hint += f" · <a href='{escape(svg)}'>SVG</a>)" if svg else ")"
    elif svg:
        hint = " (click: full size, hover for details)"
    return (f"<figure{wide}><a href='{escape(target)}'><img src='{escape(name)}'{dims} "
            f"alt='{escape(caption)}'></a><figcaption>{escape(caption)}{hint}</figcaption>"
            "</figure>")


def write(out: str, cards: list, seconds: float) -> str:
    """Write ``out/index.html`` for ``cards`` (see demos.gallery.Card); returns its path."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>tinygraph gallery: recurrent networks, folded and unfolded</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>tinygraph gallery</h1>",
        "<p>The figures of <i>Deep Learning</i> ch. 10 (part 1), in the book's order, each "
        "drawn from a network trained briefly on its task with tinygraph, then recorded on one "
        "short held-out sequence. Every picture is computed from the recorded graph: the folded "
        "view merges the steps of the unfolded one, and the black square is the one-step delay. "
        "Gradient overlays colour each node by log<sub>10</sub> of ‖∂L/∂·‖ (pale: small, dark: "
        "large, red: NaN/inf). After the book's figures: the same Elman figure from a plain "
        "loop without annotations, then how gradients flow through time (per loss term, "
        "against a task's horizon, in gated cells, when they explode) and PyTorch models. "
        "Click a graph for its interactive page: pan, zoom, hover a node for its details, "
        f"a slider over the steps. Built in {seconds:.0f} s.</p>",
        "<nav><h2>Contents</h2><ol>",
    ]
    anchors = []
    for i, card in enumerate(cards):
        anchor = card.anchor or f"section-{i + 1}"
        anchors.append(anchor)
        parts.append(f"<li><a href='#{escape(anchor)}'>{escape(card.title)}</a></li>")
    parts.append("</ol></nav>")
    for card, anchor in zip(cards, anchors):
        parts.append(f"<section id='{escape(anchor)}'><h2>{escape(card.title)} "
                     f"<a href='#{escape(anchor)}'>#</a></h2><p>{escape(card.blurb)}</p>")
        parts.append("<div class='figs'>")
        for name, caption in card.figures:
            parts.append(_figure(out, name, caption))
        parts.append("</div>")
        for note in card.notes:
            parts.append(f"<pre>{escape(note)}</pre>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    path = os.path.join(out, "index.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
