"""Compensation against references: flowCore's compdata (compref1), CytoExploreR's two published
answers, FlowKit's compensated events and its matrix-inverse test; matrix file dialects; errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytophen
from conftest import shared_path
from cytophen.compensation import (
    GIVEN_MATRIX,
    Compensation,
    check_detectors,
    compensate,
    compensation_matrix,
    compute_spillover,
    decompensate,
    is_identity,
    read_channel_match,
    read_spillover_csv,
    spillover_from_keyword,
    write_spillover_csv,
)
from cytophen.errors import CompensationError


def read(path):
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # Latin-1 TEXT, off-by-one $ENDDATA: repaired, with warnings
        return cytophen.read_fcs(path)


# ------------------------------------------------------------------------------------------------
# flowCore compdata: known answer
# ------------------------------------------------------------------------------------------------
def flowcore_controls():
    folder = shared_path("compensation", "flowcore", "compdata", "data")
    samples = {p.name: read(p) for p in sorted(folder.iterdir())}
    unstained = samples.pop("060909.001")
    return samples, unstained


def test_flowcore_compref1_reproduced():
    controls, unstained = flowcore_controls()
    match = shared_path("compensation", "flowcore", "compdata", "comp_match")
    got = compute_spillover(controls, unstained, match)
    ref = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compref1"))
    assert list(got.index) == list(ref.index) == ["FL1-H", "FL2-H", "FL3-H", "FL4-H"]
    np.testing.assert_allclose(
        got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-6
    )
    # compref is the same answer (same bytes upstream)
    ref0 = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compref"))
    np.testing.assert_allclose(got.to_numpy(), ref0.to_numpy(), atol=1e-6)


def test_flowcore_log_channels_must_be_linearised():
    """The FL channels of these FCS 2.0 files are 4-decade log-amplified ($PnE=4,0): medians of the
    stored channel numbers give a different (wrong) matrix; the linearised values give compref1."""
    controls, unstained = flowcore_controls()
    ref = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compref1"))
    match = read_channel_match(shared_path("compensation", "flowcore", "compdata", "comp_match"))
    chans = list(ref.columns)
    u = np.array([np.median(unstained.events[:, unstained.channel_index(c)]) for c in chans])
    raw = pd.DataFrame(np.eye(4), index=chans, columns=chans)
    for name, s in controls.items():
        m = np.array([np.median(s.events[:, s.channel_index(c)]) for c in chans]) - u
        raw.loc[match[name]] = m / m[chans.index(match[name])]
    assert np.abs(raw.to_numpy() - ref.to_numpy()).max() > 0.1


def test_compmatrix_cr_line_endings_close_to_compref1():
    cm = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compmatrix"))
    ref = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compref1"))
    assert list(cm.columns) == list(cm.index) == ["FL1-H", "FL2-H", "FL3-H", "FL4-H"]
    assert cm.loc["FL1-H", "FL2-H"] == 0.24 and cm.loc["FL4-H", "FL1-H"] == 7.95e-4
    assert np.abs(cm.to_numpy() - ref.to_numpy()).max() < 0.02


def test_compref3_mode_method_differs_from_median():
    ref1 = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compref1"))
    ref3 = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compref3"))
    assert ref3.shape == (4, 4) and np.abs(ref3.to_numpy() - ref1.to_numpy()).max() > 0.1


# ------------------------------------------------------------------------------------------------
# CytoExploreR: two published answers for the same controls
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cytoexplorer():
    base = shared_path("compensation", "cytoexplorer")
    match = read_channel_match(base / "Compensation-Channels.csv")
    controls = {k: read(base / "Compensation" / k) for k, v in match.items() if v != "unstained"}
    unstained = read(base / "Compensation" / "Compensation-Unstained.fcs")
    published_csv = read_spillover_csv(base / "Compensation-Spillover-Matrix.csv")
    return match, controls, unstained, published_csv


def test_cytoexplorer_against_both_published_matrices(cytoexplorer):
    """CytoExploreR gated single cells and a positive peak before taking medians; the FACSDiva SPILL
    keyword comes from Diva's own gates. The two published answers differ by up to 0.077.
    Estimating on the positive events (above the unstained 99.5th percentile in the primary
    detector) lands as close to each published answer as they are to each other; medians of all
    events (flowCore's default) are far off for these controls (most events are unstained)."""
    match, controls, unstained, published_csv = cytoexplorer
    spill_kw = unstained.spillover
    dets = list(spill_kw.columns)
    rows = [v for v in match.values() if v != "unstained"]
    assert (published_csv.columns == spill_kw.columns).all()
    between = np.abs((published_csv - spill_kw).loc[rows].to_numpy()).max()
    assert 0.07 < between < 0.08

    got = compute_spillover(controls, unstained, match, detectors=dets, positive_quantile=0.995)
    assert list(got.index) == dets
    # detectors without a control: identity rows, as in CytoExploreR's matrix
    others = [d for d in dets if d not in rows]
    np.testing.assert_array_equal(got.loc[others].to_numpy(), published_csv.loc[others].to_numpy())
    for ref, tol in ((published_csv, 0.08), (spill_kw, 0.10)):
        d = np.abs((got - ref).loc[rows].to_numpy())
        assert d.max() < tol
        assert np.median(d[d > 0]) < 0.02
    # the big spillovers are found: PE -> PE-Texas Red, AF647 -> AF700, AF700 -> APC-Cy7
    for src, det in (
        ("PE-A", "PE-Texas Red-A"),
        ("Alexa Fluor 647-A", "Alexa Fluor 700-A"),
        ("Alexa Fluor 700-A", "APC-Cy7-A"),
    ):
        assert got.loc[src, det] == pytest.approx(published_csv.loc[src, det], abs=0.02)

    all_events = compute_spillover(controls, unstained, match, detectors=dets)
    assert np.abs((all_events - published_csv).loc[rows].to_numpy()).max() > 0.3


# ------------------------------------------------------------------------------------------------
# FlowKit: applying and inverting a matrix
# ------------------------------------------------------------------------------------------------
def test_flowkit_comp_example_roundtrip_and_values():
    base = shared_path("compensation", "flowkit")
    sample = read(base / "test_comp_example.fcs")
    assert is_identity(sample.spillover)  # its own SPILL keyword is a 14 x 14 identity
    spill = read_spillover_csv(base / "comp_complete_example.csv")
    assert spill.shape == (14, 14) and spill.loc["Ax488-A", "PE-A"] == 0.2986
    idx = check_detectors(spill, sample.channels)
    raw = np.fromfile(base / "test_comp_example.npy", dtype="<f8").reshape(
        -1, 18
    )  # FlowKit's raw events
    np.testing.assert_array_equal(sample.events[:, idx].astype(np.float64), raw[:, idx])
    comp = compensate(raw[:, idx], spill)
    np.testing.assert_allclose(decompensate(comp, spill), raw[:, idx], rtol=1e-12, atol=1e-9)
    assert not np.allclose(comp, raw[:, idx])
    # and the compensated events agree with FlowKit's own
    fk = pytest.importorskip("flowkit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fks = fk.Sample(
            str(base / "test_comp_example.fcs"),
            compensation=str(base / "comp_complete_example.csv"),
            ignore_offset_error=True,
        )
    np.testing.assert_allclose(comp, fks.get_events(source="comp")[:, idx], rtol=1e-9, atol=1e-8)


def test_compensate_equals_solve_and_handles_nan():
    rng = np.random.default_rng(0)
    s = np.eye(5) + rng.uniform(0, 0.3, (5, 5)) * (1 - np.eye(5))
    df = pd.DataFrame(s, index=list("ABCDE"), columns=list("ABCDE"))
    x = rng.normal(1000, 300, (1000, 5))
    x[3, 2] = np.nan
    got = compensate(x, df)
    ok = ~np.isnan(x).any(axis=1)
    np.testing.assert_allclose(got[ok], np.linalg.solve(s.T, x[ok].T).T, rtol=1e-12, atol=1e-9)
    assert np.isnan(got[3]).all() and not np.isnan(got[ok]).any()
    np.testing.assert_allclose(
        compensate(x.astype(np.float32), df)[ok], got[ok], rtol=1e-5, atol=1e-3
    )


def test_non_square_spectrum_matrix_unmixes():
    # 2 fluorochromes over 3 detectors: least-squares unmixing recovers exact mixtures
    s = pd.DataFrame(
        [[1.0, 0.2, 0.05], [0.1, 1.0, 0.3]], index=["FITC", "PE"], columns=["FL1", "FL2", "FL3"]
    )
    c = np.array([[100.0, 0.0], [0.0, 50.0], [10.0, 20.0]])
    np.testing.assert_allclose(compensate(c @ s.to_numpy(), s), c, atol=1e-10)


def test_compensate_errors():
    s = pd.DataFrame([[1.0, 0.1], [0.1, 1.0]], index=["A", "B"], columns=["A", "B"])
    with pytest.raises(CompensationError, match="2 detector columns"):
        compensate(np.zeros((3, 3)), s)
    with pytest.raises(CompensationError, match="singular"):
        compensation_matrix(
            pd.DataFrame([[1.0, 1.0], [1.0, 1.0]], index=["A", "B"], columns=["A", "B"])
        )
    with pytest.raises(CompensationError, match="non-finite"):
        compensate(np.zeros((1, 2)), pd.DataFrame([[1.0, np.nan], [0, 1]], columns=["A", "B"]))
    with pytest.raises(
        CompensationError, match=r"'FL9-H'.*matrix detectors: A, FL9-H.*channels of the file: A, B"
    ):
        check_detectors(pd.DataFrame(np.eye(2), columns=["A", "FL9-H"]), ["A", "B"])


# ------------------------------------------------------------------------------------------------
# keywords and files
# ------------------------------------------------------------------------------------------------
def test_spillover_from_keyword_variants():
    df = spillover_from_keyword("2,FL1-A,FL2-A,1,0.1,0.02,1")
    assert df.loc["FL1-A", "FL2-A"] == 0.1 and df.loc["FL2-A", "FL1-A"] == 0.02
    comma = spillover_from_keyword("2,FL1-A,FL2-A,1,0,0,1,0,02,1,0")  # decimal commas
    assert comma.loc["FL1-A", "FL2-A"] == 0.1 and comma.loc["FL2-A", "FL1-A"] == 0.02
    ident = spillover_from_keyword("3,A,B,C,1,0,0,0,1,0,0,0,1")
    assert is_identity(ident)
    with pytest.raises(CompensationError, match=r"x\.fcs: \$SPILLOVER cannot be used"):
        spillover_from_keyword("3,A,B,1,0", path="x.fcs")
    with pytest.raises(CompensationError, match=r"'FL2-A'.*channels of the file: FL1-A, FL3-A"):
        spillover_from_keyword("2,FL1-A,FL2-A,1,0.1,0.02,1", channels=["FL1-A", "FL3-A"])


def test_keyword_of_real_file_matches_reader():
    path = shared_path("compensation", "cytoexplorer", "Compensation", "Compensation-PE.fcs")
    s = read(path)
    df = spillover_from_keyword(s.keyword("SPILL"), channels=s.channels, keyword="SPILL")
    pd.testing.assert_frame_equal(df, s.spillover)
    assert df.shape == (11, 11) and df.loc["PE-A", "PE-Texas Red-A"] == pytest.approx(
        0.523, abs=1e-3
    )


def test_read_spillover_csv_dialects():
    den = read_spillover_csv(
        shared_path("compensation", "flowkit", "8_color_data_set", "den_comp.csv")
    )
    assert den.shape == (8, 8) and den.columns[0] == "TNFa FITC FLR-A"
    assert den.loc["CD8 PerCP-Cy55 FLR-A", "CD4 PE-Cy7 FLR-A"] == 0.127012
    cx = read_spillover_csv(
        shared_path("compensation", "cytoexplorer", "Compensation-Spillover-Matrix.csv")
    )
    assert cx.shape == (11, 11) and list(cx.index) == list(cx.columns)
    assert cx.loc["Alexa Fluor 700-A", "Alexa Fluor 405-A"] == -0.011469
    ref1 = read_spillover_csv(shared_path("compensation", "flowcore", "compdata", "compref1"))
    assert ref1.loc["FL3-H", "FL4-H"] == 0.229593859843027


def test_read_spillover_csv_with_a_named_row_name_column(tmp_path: Path):
    # pandas' to_csv(index_label="fluorochrome"): the first header cell names the row names
    (tmp_path / "m.csv").write_text("fluorochrome,FITC-A,PE-A\nFITC,1.0,0.25\nPE,0.0,1.0\n")
    m = read_spillover_csv(tmp_path / "m.csv")
    assert list(m.index) == ["FITC", "PE"] and list(m.columns) == ["FITC-A", "PE-A"]
    assert m.loc["FITC", "PE-A"] == 0.25


def test_read_spillover_csv_roundtrip_percent_and_errors(tmp_path: Path):
    s = pd.DataFrame([[1.0, 0.123456789012345], [0.0, 1.0]], index=["A", "B"], columns=["A", "B"])
    write_spillover_csv(s, tmp_path / "m.csv")
    pd.testing.assert_frame_equal(read_spillover_csv(tmp_path / "m.csv"), s)
    (tmp_path / "pct.txt").write_text("A\tB\n100\t12.5\n3\t100\n")
    np.testing.assert_allclose(
        read_spillover_csv(tmp_path / "pct.txt").to_numpy(), [[1, 0.125], [0.03, 1]]
    )
    (tmp_path / "ragged.csv").write_text("A,B\n1,0.1\n0.2,1,7\n")
    with pytest.raises(CompensationError, match=r"ragged\.csv:3: row has 3 values, expected 2"):
        read_spillover_csv(tmp_path / "ragged.csv")
    (tmp_path / "words.csv").write_text("hello,world\nfoo,bar\n")
    with pytest.raises(CompensationError, match="no numeric matrix rows"):
        read_spillover_csv(tmp_path / "words.csv")
    with pytest.raises(CompensationError, match="cannot read"):
        read_spillover_csv(tmp_path / "absent.csv")


def test_compute_spillover_errors():
    controls, unstained = flowcore_controls()
    match = read_channel_match(shared_path("compensation", "flowcore", "compdata", "comp_match"))
    bad = dict(match, **{"060909.002": "FL9-H"})
    with pytest.raises(CompensationError, match=r"FL9-H.*unstained control.*FL1-H"):
        compute_spillover(controls, unstained, bad)
    partial = {k: v for k, v in match.items() if k != "060909.003"}
    with pytest.raises(CompensationError, match=r"060909\.003 have no entry"):
        compute_spillover(controls, unstained, partial)
    fewer = {k: v for k, v in controls.items() if k != "060909.004"}
    with pytest.raises(
        CompensationError, match=r"names control\(s\) 060909\.004 that were not given"
    ):
        compute_spillover(fewer, unstained, match)
    swapped = dict(match, **{"060909.002": "FL2-H"})
    with pytest.raises(CompensationError, match="same primary detector FL2-H"):
        compute_spillover(controls, unstained, swapped)
    with pytest.raises(CompensationError, match="unknown spillover method"):
        compute_spillover(controls, unstained, match, method="mode")
    # a "control" with no signal above the unstained one (here: the unstained file itself)
    with pytest.raises(CompensationError, match="not above the unstained"):
        compute_spillover({"copy.fcs": unstained}, unstained, {"copy.fcs": "FL1-H"})


def test_large_products_run_on_one_blas_thread_with_the_same_values():
    from cytophen import compensation as comp

    rng = np.random.default_rng(4)
    k = 6
    s = np.eye(k) + rng.uniform(0, 0.2, (k, k)) * (1 - np.eye(k))
    names = [f"FL{i}" for i in range(k)]
    df = pd.DataFrame(s, index=names, columns=names)
    x = rng.lognormal(6, 1.5, (comp._ONE_BLAS_THREAD_MIN + 7, k))
    x[3, 2] = np.nan
    x[5, 1] = np.inf
    ctl = comp._blas_control()
    before = [lib.num_threads for lib in ctl.lib_controllers] if ctl is not None else []
    with np.errstate(invalid="ignore"):
        want = x @ np.linalg.inv(s)
    got = compensate(x, df)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[3]).all() and not np.isnan(np.delete(got, [3, 5], axis=0)).any()
    if ctl is not None:  # the limit is lifted afterwards
        assert [lib.num_threads for lib in ctl.lib_controllers] == before


@pytest.mark.parametrize(
    "given, kind, override, recorded",
    [
        (None, "template", None, "template"),
        ("Template", "template", None, "template"),
        ("fcs", "FCS", "FCS", "fcs"),
        ("FCS", "FCS", "FCS", "fcs"),
        ("keyword", "keyword", "keyword", "keyword"),
        ("None", "uncompensated", "none", "none"),
        ("uncompensated", "uncompensated", "none", "none"),
    ],
)
def test_compensation_words(given, kind, override, recorded):
    choice = Compensation.parse(given)
    assert (choice.kind, choice.override, choice.record()) == (
        kind,
        override,
        {"compensation": recorded},
    )
    assert Compensation.from_record(choice.record()).kind == kind


def test_compensation_matrix_csv_is_recorded_and_read_back(tmp_path: Path):
    s = pd.DataFrame([[1.0, 0.5], [0.0, 1.0]], index=["A", "B"], columns=["A", "B"])
    write_spillover_csv(s, tmp_path / "m.csv")
    choice = Compensation.parse(str(tmp_path / "m.csv"), files=True)
    assert choice.kind == "matrix"
    pd.testing.assert_frame_equal(choice.override, s)
    rec = choice.record()
    assert rec["compensation"] == str((tmp_path / "m.csv").resolve())
    assert len(rec["compensation_sha256"]) == 64
    pd.testing.assert_frame_equal(Compensation.from_record(rec).matrix, s)
    assert Compensation.parse(s).record() == {"compensation": "matrix (DataFrame)"}
    with pytest.raises(CompensationError, match="did not record"):
        Compensation.from_record({"compensation": "matrix (DataFrame)"})
    with pytest.raises(CompensationError, match="no such file"):
        Compensation.parse(str(tmp_path / "absent.csv"), files=True)
    with pytest.raises(CompensationError, match="expected template, keyword, none"):
        Compensation.parse("sometimes", files=True)
    # without files, another word is the id of one of the template's matrices
    assert Compensation.parse("m1").ref("FCS") == "m1"
    assert Compensation.parse(None).ref("m1") == "m1"
    assert Compensation.parse(s).ref("m1") == GIVEN_MATRIX
