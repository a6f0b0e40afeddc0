"""viz.html: the interactive page, checked as text and in a real headless Chromium.

The browser tests need selenium (the `browser` extra) and Debian's `chromium` + `chromium-driver`
(`apt-get install chromium chromium-driver`); they skip cleanly without them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import graphs
import viz
from viz.html import node_table, report_html
from viz.style import fmt

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz `dot` not installed (apt-get install graphviz)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = os.environ.get("VIZ_SCREENSHOTS")  # a folder: keep the screenshots to look at


def page_data(text: str) -> dict:
    blob = re.search(r'<script type="application/json" id="viz-data">(.*?)</script>', text,
                     re.S).group(1)
    return json.loads(blob)


@needs_dot
@pytest.mark.parametrize("view", ["unfolded", "folded"])
def test_page_is_one_self_contained_file(tmp_path, view):
    G = graphs.elman(6, grads=True)
    path = viz.render(getattr(viz, view)(G, grads=True), tmp_path / "x.html")
    text = open(path, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<?xml" not in text
    # nothing fetched: no external script, style, image or font
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert os.listdir(tmp_path) == ["x.html"]
    data = page_data(text)
    assert data["view"] == view and data["grads"] and data["steps"] == [1, 2, 3, 4, 5, 6]


@needs_dot
def test_page_table_has_every_attribute_of_the_drawn_nodes():
    G = graphs.elman(5, grads=True)
    G.nodes[next(n for n, d in G.nodes(data=True) if d["name"] == "h")]["src"] = "model.py:12"
    data = node_table(viz.unfolded(G, grads=True))
    h = [d for d in data["nodes"].values() if d["name"] == "h"]
    assert len(h) == 5 and sorted(d["step"] for d in h) == [1, 2, 3, 4, 5]
    assert {"op", "shape", "dtype", "scope", "value_norm", "grad_norm", "src"} <= set(h[0])
    assert any(d["src"] == "model.py:12" for d in h)
    for d in h:  # the norms are the recorded ones, not recomputed
        n = next(n for n, a in G.nodes(data=True) if a["name"] == "h" and a["step"] == d["step"])
        assert d["grad_norm"] == G.nodes[n]["grad_norm"]
    folded = node_table(viz.folded(G, grads=True))
    hf = [d for d in folded["nodes"].values() if d["name"] == "h"]
    assert len(hf) == 1 and sorted(map(int, hf[0]["per_step"])) == [1, 2, 3, 4, 5]


@needs_dot
@pytest.mark.parametrize("make", [lambda: graphs.tree(4, grads=True),
                                  lambda: graphs.seq2seq(4, T_out=3),
                                  lambda: graphs.bidirectional(12, grads=True)],
                         ids=["tree", "seq2seq", "bidirectional"])
@pytest.mark.parametrize("view,opts", [("unfolded", {}), ("unfolded", {"level": "op",
                                                                        "params": "per_step"}),
                                       ("folded", {}), ("folded", {"level": "op"})])
def test_every_drawn_node_has_its_details(make, view, opts):
    fig = getattr(viz, view)(make(), **opts)
    svg = viz.figure.pipe(fig).decode()
    drawn = set(re.findall(r'class="node">\s*<title>([^<]*)</title>', svg))
    table = node_table(fig)["nodes"]
    marks = {i for i in drawn - set(table) if re.fullmatch(r"d\d+_\d+", i)}  # delay squares
    assert drawn - marks <= set(table) and len(drawn - marks) >= 6
    assert view == "folded" or not marks


@needs_dot
def test_a_hand_made_digraph_gets_a_page_without_details(tmp_path):
    import graphviz
    fig = graphviz.Digraph(name="mine")
    fig.edge("a", "b")
    text = open(viz.render(fig, tmp_path / "m.html"), encoding="utf-8").read()
    assert "<svg" in text and page_data(text)["nodes"] == {}


@needs_dot
def test_cli_writes_the_page(tmp_path):
    viz.save_json(graphs.elman(4, grads=True), tmp_path / "g.json")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(viz.__file__)))
    p = subprocess.run([sys.executable, "-m", "viz", str(tmp_path / "g.json"), "--grad", "-o",
                        str(tmp_path / "g.html")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert page_data((tmp_path / "g.html").read_text())["grads"]


def test_report_html_shows_the_verdict_and_the_text():
    report = viz.diagnose(graphs.elman(30, grads=True))
    out = report_html(report)
    assert out.startswith("<div>") and "<li>" in out and report.verdict.upper() in out
    assert report._repr_html_() == out


# --- in a real browser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no headless browser: apt-get install chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=opts, service=service)
    yield driver
    driver.quit()


def shot(driver, tmp_path, name):
    folder = SHOTS or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + ".png")
    driver.save_screenshot(path)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    return path


@needs_dot
def test_page_in_chromium_pans_zooms_and_shows_a_node(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    G = graphs.elman(6, grads=True)
    G.nodes[next(n for n, d in G.nodes(data=True) if d["name"] == "h" and d["step"] == 3)][
        "src"] = "train.py:42"
    path = viz.render(viz.unfolded(G, grads=True), tmp_path / "u.html")
    browser.get("file://" + os.path.abspath(path))
    assert browser.execute_script("return window.vizPage !== undefined")
    assert browser.execute_script(
        "return performance.getEntriesByType('resource').length") == 0  # nothing fetched
    before = browser.execute_script("return window.vizPage.view()")
    browser.find_element(By.ID, "zin").click()
    zoomed = browser.execute_script("return window.vizPage.view()")
    assert zoomed[2] < before[2] * 0.9  # the visible width shrank: zoomed in
    stage = browser.find_element(By.ID, "stage")
    ActionChains(browser).move_to_element(stage).click_and_hold().move_by_offset(120, 40) \
        .release().perform()
    panned = browser.execute_script("return window.vizPage.view()")
    assert panned[0] < zoomed[0] and panned[2] == pytest.approx(zoomed[2])
    browser.find_element(By.ID, "fit").click()
    h3 = browser.execute_script(
        "const d = window.vizPage.data.nodes; return Object.keys(d).find("
        "k => d[k].name === 'h' && d[k].step === 3)")
    node = browser.find_element(By.CSS_SELECTOR, f'g.node[data-id="{h3}"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', "
                           "{bubbles: true}))", node)
    panel = browser.find_element(By.ID, "panel").text
    for word in ("name", "h", "op", "tanh", "shape", "(4)", "dtype", "float64", "scope", "rnn",
                 "step", "3", "gradient norm", "value norm", "source", "train.py:42"):
        assert word in panel, (word, panel)
    assert "n" not in browser.execute_script(  # no browser tooltip with internal ids left
        "return Array.from(document.querySelectorAll('g.node title')).map(t => t.textContent)"
        ".join('')")
    shot(browser, tmp_path, "html_unfolded_node")


@needs_dot
def test_page_in_chromium_has_a_step_slider(browser, tmp_path):
    from selenium.webdriver.common.by import By
    G = graphs.elman(6, grads=True)
    path = viz.render(viz.unfolded(G, grads=True), tmp_path / "s.html")
    browser.get("file://" + os.path.abspath(path))
    slider = browser.find_element(By.ID, "step")
    assert slider.is_displayed() and slider.get_attribute("max") == "6"
    browser.execute_script("const s = document.getElementById('step'); s.value = 2; "
                           "s.dispatchEvent(new Event('input'))")
    assert browser.find_element(By.ID, "steplabel").text == "step 2"
    lit = browser.execute_script(
        "return Array.from(document.querySelectorAll('g.node:not(.off)')).map(g => g.dataset.id)")
    data = browser.execute_script("return window.vizPage.data.nodes")
    assert lit and all(data[i]["step"] == 2 for i in lit)
    assert browser.execute_script("return document.querySelectorAll('g.node.off').length") > 5
    assert "step 2" in browser.find_element(By.ID, "panel").text
    shot(browser, tmp_path, "html_unfolded_step2")
    path = viz.render(viz.folded(G, grads=True), tmp_path / "f.html")
    browser.get("file://" + os.path.abspath(path))
    browser.execute_script("const s = document.getElementById('step'); s.value = 1; "
                           "s.dispatchEvent(new Event('input'))")
    panel = browser.find_element(By.ID, "panel").text
    h1 = next(d["grad_norm"] for _, d in G.nodes(data=True) if d["name"] == "h" and d["step"] == 1)
    assert "step 1" in panel and re.search(rf"^h \(rnn\) {re.escape(fmt(h1))}$", panel, re.M)
    shot(browser, tmp_path, "html_folded_step1")
    browser.execute_script("const s = document.getElementById('step'); s.value = 0; "
                           "s.dispatchEvent(new Event('input'))")
    role = browser.execute_script("const n = window.vizPage.data.nodes; "
                                  "return Object.keys(n).find(k => n[k].name === 'h')")
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))",
                           browser.find_element(By.CSS_SELECTOR, f'g.node[data-id="{role}"]'))
    panel = browser.find_element(By.ID, "panel").text
    assert "steps 6" in panel and "per step" in panel and "gradient norm" not in panel
    for t in range(1, 7):  # each step's recorded norm, in the panel's table
        g = next(d["grad_norm"] for _, d in G.nodes(data=True) if d["name"] == "h" and d["step"] == t)
        assert re.search(rf"^{t} 1 {re.escape(fmt(g))}$", panel, re.M), panel
    shot(browser, tmp_path, "html_folded_role")


@needs_dot
def test_page_without_gradients_hides_the_slider(browser, tmp_path):
    from selenium.webdriver.common.by import By
    path = viz.render(viz.folded(graphs.elman(4)), tmp_path / "n.html")
    browser.get("file://" + os.path.abspath(path))
    assert not browser.find_element(By.ID, "step").is_displayed()
