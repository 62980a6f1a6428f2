"""The built wheel, installed in a fresh virtual environment outside the repository, runs as a user
runs it: the installed ``cytophen`` command gates with the shipped templates by name, and the
README tour runs as written.

Offline and fast: the wheel is built with the project's own setuptools (no build isolation, no
index), and installed with ``--no-deps`` into a venv whose dependencies are the project venv's
(a ``.pth`` line naming its site-packages: plain path entries, so the project's editable install
of cytophen is not seen there).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _sh(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of what a release holds (no build/ or egg-info in the checkout)."""
    src = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("src", "gating_templates"):  # src/cytophen/gating_templates links to the latter
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    r = _sh(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
         "--quiet", "-w", dist, src],
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license" not in r.stderr.lower(), r.stderr  # no setuptools licence-table warning
    (whl,) = dist.glob("cytophen-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict[str, str]:
    """A fresh venv outside the repository with the wheel installed; returns the environment to
    run its commands in."""
    home = tmp_path_factory.mktemp("venv")
    r = _sh([sys.executable, "-m", "venv", "--without-pip", home / "env"])
    assert r.returncode == 0, r.stderr
    py = home / "env" / "bin" / "python"
    site = _sh([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.strip()) / "_project_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    r = _sh(
        [sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
         "--quiet", wheel],
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{home / 'env' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(home / "env")
    env["NUMBA_CACHE_DIR"] = str(home / "numba_cache")
    return env


def test_wheel_holds_every_module_and_the_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        p.relative_to(ROOT / "src").as_posix()
        for p in (ROOT / "src" / "cytophen").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules - names == set()
    with zipfile.ZipFile(wheel) as z:
        for path in (ROOT / "gating_templates").glob("*.yaml"):
            assert z.read(f"cytophen/gating_templates/{path.name}") == path.read_bytes()


def test_installed_command_gates_with_shipped_templates_by_name(venv, tmp_path):
    """In a folder that holds only samples/, as the issue ran it."""
    exe = shutil.which("cytophen", path=venv["PATH"])
    assert exe is not None and Path(exe).is_relative_to(Path(venv["VIRTUAL_ENV"]))

    def run(*args):
        r = _sh(["cytophen", *args], cwd=tmp_path, env=venv)
        assert r.returncode == 0, f"cytophen {' '.join(map(str, args))}\n{r.stderr}"
        return r

    where = _sh(
        ["python", "-c", "import cytophen; print(cytophen.__file__); "
         "print(cytophen.load_template('treg').source)"],
        cwd=tmp_path, env=venv,
    )  # fmt: skip
    module, source = where.stdout.split()
    assert Path(module).is_relative_to(Path(venv["VIRTUAL_ENV"])), where.stderr
    assert Path(source).is_relative_to(Path(venv["VIRTUAL_ENV"]))

    run("simulate", "-o", "samples", "--panel", "bcell", "--files", "2", "--events", "5000", "-q")
    run("simulate", "-o", "tubes", "--panel", "treg", "--events", "5000", "-q")
    r = run("gate", "samples/", "--template", "bcell.yaml")  # exactly as the README's first line
    assert "bcell_results/" in r.stderr and "shipped with cytophen" in r.stderr
    assert (tmp_path / "bcell_results" / "populations.csv").is_file()
    run("gate", "tubes/", "--template", "treg", "-j", "1")
    assert (tmp_path / "treg_results" / "populations.csv").is_file()
    r = run("templates")
    assert re.search(r"^bcell\s+\S+\s+B-cell", r.stdout, re.M), r.stdout
    r = _sh(["python", "-m", "cytophen", "templates", "copy", "treg"], cwd=tmp_path, env=venv)
    assert r.returncode == 0 and (tmp_path / "treg.yaml").is_file(), r.stderr


def _tour() -> list[str]:
    """The commands of the README's tour, as written."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## A five-minute tour", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_starts_with_the_command_as_users_type_it():
    text = (ROOT / "README.md").read_text()
    first = text.split("```bash\n", 1)[1].split("```", 1)[0].strip()
    assert text.index("```bash") < text.index("\n## ")  # before any section
    assert first == "cytophen gate samples/ --template bcell.yaml"


def test_readme_tour_runs_in_the_installed_venv(venv, tmp_path):
    commands = _tour()
    assert commands[0].startswith("cytophen simulate") and len(commands) >= 8
    for cmd in commands:
        r = subprocess.run(
            ["bash", "-c", cmd], cwd=tmp_path, env=venv, capture_output=True, text=True
        )
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, f"{cmd}\n{r.stderr}"
    for made in ("results/bcell/report.html", "merged.csv", "stats/tests.csv", "bcell.yaml",
                 "bcell_results/populations.csv"):  # fmt: skip
        assert (tmp_path / made).is_file(), made


def test_public_api_is_what_all_lists():
    """Every name of ``cytophen.__all__`` resolves (classes and the gates / transforms
    namespaces on first use); names it does not list are not attributes."""
    import cytophen.gates
    import cytophen.transforms
    from cytophen.pipeline.batch import BatchResult
    from cytophen.result import GatingResult
    from cytophen.template import Template

    assert all(getattr(cytophen, name) is not None for name in cytophen.__all__)
    assert (cytophen.Template, cytophen.GatingResult, cytophen.BatchResult) == (
        Template,
        GatingResult,
        BatchResult,
    )
    assert cytophen.gates is sys.modules["cytophen.gates"]
    assert cytophen.transforms is sys.modules["cytophen.transforms"]
    assert set(cytophen.__all__) <= set(dir(cytophen))
    with pytest.raises(AttributeError, match="no attribute 'engine_internals'"):
        cytophen.engine_internals  # noqa: B018
