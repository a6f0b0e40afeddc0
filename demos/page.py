"""index.html of the gallery: one card per figure set, with one line of explanation each.

Flow: demos.gallery (cards of file names and notes) -> **demos.page** -> out/index.html.
A plain static page: no scripts, images referenced by relative path, so ``out/`` can be copied
anywhere or opened straight from disk.
"""
from __future__ import annotations

import os
from html import escape

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
section { border-top: 1px solid #ddd; padding: 1em 0; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-end; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; max-height: 520px; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f8fa; padding: 0.6em; font-size: 0.8em; white-space: pre-wrap; }
"""


def write(out: str, cards: list, seconds: float) -> str:
    """Write ``out/index.html`` for ``cards`` (see demos.gallery.Card); returns its path."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>tinygraph gallery: recurrent networks, folded and unfolded</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>tinygraph gallery</h1>",
        "<p>Each architecture of <i>Deep Learning</i> ch. 10, trained briefly on its task with "
        "tinygraph, then recorded on one short held-out sequence. Every picture is computed "
        "from the recorded graph: the folded view merges the steps of the unfolded one, and "
        "the black square is the one-step delay. Gradient overlays colour each node by "
        "log<sub>10</sub> of ‖∂L/∂·‖ (pale: small, dark: large, red: NaN/inf). "
        f"Built in {seconds:.0f} s.</p>",
    ]
    for card in cards:
        parts.append(f"<section><h2>{escape(card.title)}</h2><p>{escape(card.blurb)}</p>")
        parts.append("<div class='figs'>")
        for name, caption in card.figures:
            parts.append(f"<figure><a href='{escape(name)}'><img src='{escape(name)}' "
                         f"alt='{escape(caption)}'></a><figcaption>{escape(caption)}"
                         "</figcaption></figure>")
        parts.append("</div>")
        for note in card.notes:
            parts.append(f"<pre>{escape(note)}</pre>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    path = os.path.join(out, "index.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
