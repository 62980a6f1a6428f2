"""``cytophen info``: summary of an FCS file, checked against facts.csv of the zoo."""

from __future__ import annotations

import json

from conftest import shared_path
from cytophen.cli import main


def _run(capsys, *args):
    code = main(["info", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info_json_matches_facts(capsys):
    path = shared_path("fcs_zoo", "fcsparser", "FACS_Diva", "facs_diva_test.fcs")
    code, out, _ = _run(capsys, path, "--json")
    assert code == 0
    d = json.loads(out)
    assert d["version"] == "FCS3.0" and d["events"] == 83411 and d["n_datasets"] == 1
    assert [c["name"] for c in d["channels"]][:3] == ["Time", "FSC-A", "FSC-W"]
    assert d["channels"][4]["marker"] == "CD20"
    assert d["spillover"]["keyword"] == "SPILL" and d["spillover"]["size"] == 8
    assert d["keywords"]["$FIL"] == "123991.fcs"  # $FIL differs from the file name


def test_info_table_and_second_dataset(capsys):
    path = shared_path("fcs_zoo", "flowio", "fcs_files", "coulter.lmd")
    code, out, err = _run(capsys, path, "--dataset", 1)
    assert code == 0
    assert "FCS3.0" in out and "18110" in out and "data sets:  2 (showing 1)" in out
    assert "TIME" in out and "spillover:  none" in out
    code, out, err = _run(capsys, path, "--dataset", 5)
    assert code == 2 and "has 2 data sets" in err


def test_info_bad_files_exit_2_with_message(capsys, tmp_path):
    path = shared_path("fcs_zoo", "fcsparser", "corrupted", "corrupted.fcs")
    code, out, err = _run(capsys, path)
    assert code == 2 and "not an FCS file" in err and "corrupted.fcs" in err
    code, out, err = _run(capsys, tmp_path / "missing.fcs")
    assert code == 2 and "not found" in err


def test_info_reports_repairs_as_warnings(capsys):
    path = shared_path("fcs_zoo", "flowio", "fcs_files", "data_stop_offset_discrepancy_example.fcs")
    code, out, err = _run(capsys, path)
    assert code == 0 and "text_offsets" in err
