"""``cytophen compensation show`` and ``cytophen compensation compute``."""

from __future__ import annotations

import numpy as np

from conftest import shared_path
from cytophen.cli import main
from cytophen.compensation import read_spillover_csv


def test_show_prints_the_keyword_matrix(capsys, tmp_path):
    path = shared_path("compensation", "cytoexplorer", "Compensation", "Compensation-PE.fcs")
    out_csv = tmp_path / "spill.csv"
    assert main(["compensation", "show", str(path), "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "SPILL, 11 x 11" in out and "PE-Texas Red-A" in out
    m = read_spillover_csv(out_csv)
    assert m.shape == (11, 11) and m.loc["PE-A", "PE-Texas Red-A"] == 0.523009347537657


def test_show_identity_and_absent(capsys):
    ident = shared_path("compensation", "flowkit", "test_comp_example.fcs")
    assert main(["compensation", "show", str(ident)]) == 0
    assert "identity" in capsys.readouterr().out
    none = shared_path("compensation", "flowcore", "compdata", "data", "060909.001")
    assert main(["compensation", "show", str(none)]) == 0
    assert "no spillover keyword" in capsys.readouterr().out


def test_compute_reproduces_compref1(capsys, tmp_path):
    base = shared_path("compensation", "flowcore", "compdata")
    out_csv = tmp_path / "spill.csv"
    rc = main(
        [
            "compensation",
            "compute",
            "--controls",
            str(base / "data"),
            "--unstained",
            "060909.001",
            "--match",
            str(base / "comp_match"),
            "--out",
            str(out_csv),
        ]
    )
    assert rc == 0
    assert "wrote" in capsys.readouterr().out
    got = read_spillover_csv(out_csv)
    ref = read_spillover_csv(base / "compref1")
    np.testing.assert_allclose(
        got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy(), atol=1e-6
    )


def test_compute_bad_match_is_a_clear_error(capsys, tmp_path):
    base = shared_path("compensation", "flowcore", "compdata")
    bad = tmp_path / "match.csv"
    bad.write_text("filename,channel\n060909.001,unstained\n060909.002,FL9-H\n")
    rc = main(
        [
            "compensation",
            "compute",
            "--controls",
            str(base / "data"),
            "--unstained",
            "060909.001",
            "--match",
            str(bad),
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "FL9-H" in err and "FL1-H" in err  # both sides named
    assert not (tmp_path / "o.csv").exists()
    rc = main(
        [
            "compensation",
            "compute",
            "--controls",
            str(base / "data"),
            "--unstained",
            "nope.fcs",
            "--match",
            str(base / "comp_match"),
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    assert rc == 2 and "nope.fcs" in capsys.readouterr().err
