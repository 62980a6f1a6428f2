"""The shipped templates by name, from any folder: ``--template bcell``/``bcell.yaml``,
``cytophen.load_template("bcell")``, ``cytophen templates`` (list, show, copy), and ``cytophen
gate samples/ --template bcell.yaml`` with no ``--out``. The reference for every shipped template
is its file in the repository's gating_templates/ (the one copy)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import cytophen
from cytophen.cli import main
from cytophen.errors import TemplateError
from cytophen.interop.shipped import shipped_dir

ROOT = Path(__file__).resolve().parents[2]
REPO_TEMPLATES = sorted((ROOT / "gating_templates").glob("*.yaml"))
NAMES = [p.stem for p in REPO_TEMPLATES]


def test_one_copy_of_the_templates():
    """The package's folder is the repository's gating_templates/, not a copy of it."""
    assert NAMES and {"bcell", "treg"} <= set(NAMES)
    assert shipped_dir().resolve() == (ROOT / "gating_templates").resolve()


@pytest.mark.parametrize("name", NAMES)
def test_load_template_by_name_from_another_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reference = cytophen.load_template(ROOT / "gating_templates" / f"{name}.yaml")
    for spec in (name, f"{name}.yaml", f"{name}.yml"):
        t = cytophen.load_template(spec)
        assert t.hash == reference.hash and t.name == name
        assert Path(t.source).resolve() == (ROOT / "gating_templates" / f"{name}.yaml").resolve()


def test_a_file_that_exists_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "gating_templates" / "bcell.yaml").read_text()
    assert '\nversion: "' in text
    Path("bcell.yaml").write_text(text.replace('\nversion: "', '\nversion: "lab-', 1))
    local = cytophen.load_template("bcell.yaml")
    assert (
        local.version.startswith("lab-") and Path(local.source).resolve() == tmp_path / "bcell.yaml"
    )
    assert not cytophen.load_template("bcell").version.startswith("lab-")  # no such path: shipped


def test_unknown_names_list_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TemplateError, match="shipped templates: " + ", ".join(NAMES)):
        cytophen.load_template("bcel")
    with pytest.raises(TemplateError, match="shipped template of that name is 'bcell'"):
        cytophen.load_template("gating_templates/bcell.yaml")  # a path: never a shipped name


def test_templates_lists_name_version_description(capsys):
    assert main(["templates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "version", "description"]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip()}
    assert sorted(rows) == NAMES
    for path in REPO_TEMPLATES:
        doc = yaml.safe_load(path.read_text())
        first = doc["description"].strip().splitlines()[0]
        assert rows[path.stem].split(None, 2) == [path.stem, str(doc["version"]), first]
    assert main(["templates", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_templates_show_prints_the_file(capsys):
    assert main(["templates", "show", "treg"]) == 0
    assert capsys.readouterr().out == (ROOT / "gating_templates" / "treg.yaml").read_text()
    assert main(["templates", "show", "nope"]) == 2
    assert "bcell, tcell, treg" in capsys.readouterr().err


def test_templates_copy_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    original = (ROOT / "gating_templates" / "bcell.yaml").read_bytes()
    assert main(["templates", "copy", "bcell"]) == 0
    assert "wrote bcell.yaml" in capsys.readouterr().out
    assert Path("bcell.yaml").read_bytes() == original
    Path("bcell.yaml").write_text("# the lab's edits\n")
    assert main(["templates", "copy", "bcell.yaml"]) == 2
    assert "not overwritten" in capsys.readouterr().err
    assert Path("bcell.yaml").read_text() == "# the lab's edits\n"
    Path("lab").mkdir()
    assert main(["templates", "copy", "treg", "-o", "lab", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert (
        Path("lab/treg.yaml").read_bytes() == (ROOT / "gating_templates" / "treg.yaml").read_bytes()
    )
    assert main(["templates", "copy", "tregs"]) == 2


def test_validate_and_convert_take_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "treg"]) == 0
    assert "valid (treg v" in capsys.readouterr().out
    shipped = (ROOT / "gating_templates" / "treg.yaml").read_bytes()
    assert main(["convert", "treg", "--format", "yaml"]) == 0
    assert (
        cytophen.load_template(tmp_path / "treg.yaml").hash == cytophen.load_template("treg").hash
    )
    assert (
        ROOT / "gating_templates" / "treg.yaml"
    ).read_bytes() == shipped  # written here, not there


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from cytophen.simulate import simulate_file

    root = tmp_path_factory.mktemp("user")
    simulate_file(root / "samples" / "S1.fcs", "bcell", seed=11, events=5000)
    return root


def test_gate_as_written_outputs_to_a_new_folder_each_run(samples, monkeypatch, capsys):
    """``cytophen gate samples/ --template bcell.yaml`` in a folder holding only samples/."""
    work = samples
    monkeypatch.chdir(work)
    code = main(["gate", "samples/", "--template", "bcell.yaml", "-j", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    first = work / "bcell_results"
    assert "bcell_results/" in err and "shipped with cytophen" in err
    template = cytophen.load_template(ROOT / "gating_templates" / "bcell.yaml")
    table = pd.read_csv(first / "populations.csv")
    assert set(table["population"]) <= set(template.names) and "switched_memory" in set(
        table["population"]
    )
    run = json.loads((first / "run.json").read_text())
    assert run["template"]["hash"] == template.hash
    before = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}

    code = main(["gate", "samples/", "--template", "bcell", "-j", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "bcell_results_2/" in err and (work / "bcell_results_2" / "populations.csv").is_file()
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == before

    code = main(["gate", "samples/", "--template", "bcell", "-j", "1", "-o", "mine", "-q"])
    assert code == 0 and (work / "mine" / "populations.csv").is_file()
    assert not (work / "bcell_results_3").exists()
    assert sorted(p.name for p in work.iterdir()) == [
        "bcell_results", "bcell_results_2", "mine", "samples",
    ]  # fmt: skip
