"""What a user meets after `pip install`: the missing-extra message, py.typed and type hints,
`python -m viz --version` / `--schema`, the console script, a closed pipe, the built wheel."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

import graphs
import viz

ROOT = pathlib.Path(__file__).resolve().parent.parent


def python(code: str, *args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=120, **kw)


BLOCK = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {mod!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
"""


@pytest.mark.parametrize("missing", ["networkx", "graphviz"])
def test_import_viz_without_the_extra_says_how_to_install_it(missing):
    p = python(BLOCK.format(mod=missing) + "import viz")
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:") and 'pip install "tinygraph[viz]"' in last
    assert repr(missing) in last


def test_the_cli_without_the_extra_says_how_to_install_it():
    p = python(BLOCK.format(mod="networkx") + "import runpy; runpy.run_module('viz', "
               "run_name='__main__')")
    assert p.returncode == 1 and 'pip install "tinygraph[viz]"' in p.stderr


def test_both_packages_are_marked_typed():
    assert (ROOT / "viz" / "py.typed").exists() and (ROOT / "tinygraph" / "py.typed").exists()


def test_mypy_sees_the_views_return_a_figure(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "use.py").write_text(
        "import viz\nreveal_type(viz.folded('g.json'))\nreveal_type(viz.unfolded('g.json'))\n"
        "reveal_type(viz.graphical_model('g.json'))\n")
    env = dict(os.environ, MYPYPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
                        "--ignore-missing-imports", "--cache-dir", str(tmp_path / "cache"),
                        str(tmp_path / "use.py")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.stdout.count('Revealed type is "viz.figure.Figure"') == 3, p.stdout


def test_version_and_schema():
    p = python("import sys, viz.__main__ as m; sys.exit(m.main())", "--version")
    assert p.returncode == 0 and p.stdout.startswith("tinygraph ") and "schema 1" in p.stdout
    p = python("import sys, viz.__main__ as m; sys.exit(m.main())", "--schema")
    assert p.returncode == 0 and "grad_norm" in p.stdout and "int or None" in p.stdout


@pytest.mark.parametrize("extra", [[], ["--diagnose"]])
def test_a_closed_pipe_ends_quietly(tmp_path, extra):
    viz.save_json(graphs.elman(30, grads=True), tmp_path / "g.json")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "viz", str(tmp_path / "g.json"),
                             "--max-steps", "0", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # what `| head` does once it has its lines: every write now fails
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0 and err == ""


def test_the_wheel_ships_the_markers_and_the_console_script(tmp_path):
    """Build the wheel from a copy of the sources (no network, no build isolation)."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("tinygraph", "viz"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {p.stderr.strip()[-200:]}")
    wheel = next((tmp_path / "dist").glob("tinygraph-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "viz/py.typed" in names and "tinygraph/py.typed" in names
    assert "viz/figure.py" in names and "viz/html.py" in names
    assert "tinygraph-viz = viz.__main__:main" in entry
