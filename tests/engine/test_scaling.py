"""Input-scale detection, the 'auto' transform, and marker names as real files spell them."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cytophen
from conftest import shared_path
from cytophen.errors import MarkerError, TransformError
from cytophen.io.sample import Sample
from cytophen.markers import read_marker_csv, resolve
from cytophen.scaling import detect_scale, logicle_width, resolve_auto
from cytophen.transforms import AutoTransform, LinearTransform, LogicleTransform


def _sample(values: np.ndarray, names, pnr="262144", extra=None) -> Sample:
    kw = {f"$P{i + 1}R": pnr for i in range(len(names))}
    kw.update(extra or {})
    return Sample(values.astype(np.float32), list(names), [""] * len(names), keywords=kw)


RNG = np.random.default_rng(0)


def test_detects_the_three_scales():
    fsc = RNG.uniform(2e4, 2e5, (5000, 1))
    logicle = RNG.normal(1.5, 0.5, (5000, 3)).clip(-0.5, 4.4)  # flowCore decades
    channel = RNG.normal(1500, 600, (5000, 3)).clip(0, 4095)  # FlowJo's 0-4096
    linear = np.exp(RNG.normal(6, 2, (5000, 3))) - 200  # raw compensated, with negatives
    names = ["FSC-A", "FL1-A", "FL2-A", "FL3-A"]
    assert detect_scale(_sample(np.hstack([fsc, logicle]), names)).scale == "logicle"
    assert detect_scale(_sample(np.hstack([fsc, channel]), names)).scale == "channel"
    assert detect_scale(_sample(np.hstack([fsc, linear]), names)).scale == "linear"
    # one dim linear channel among channel-scale ones: a channel-scale channel never exceeds 4096,
    # a linear one may stay below it; one linear channel above it makes the file linear
    mixed = np.hstack([fsc, channel[:, :2], linear[:, :1] * 50])
    assert detect_scale(_sample(mixed, names)).scale == "linear"
    # the caller may say which scale applies
    info = detect_scale(_sample(np.hstack([fsc, linear]), names), "channel")
    assert info.scale == "channel" and not info.detected
    with pytest.raises(TransformError, match="one of auto"):
        detect_scale(_sample(np.hstack([fsc, linear]), names), "biex")


def test_log_amplified_channels_are_linear_with_their_decoded_top():
    """$PnE 4,0 on a 1024-channel range: decoded values 1..10^4, top of scale 10^4."""
    x = RNG.uniform(0, 1023, (2000, 2))
    s = _sample(x, ["FSC-H", "FL1-H"], pnr="1024", extra={"$P2E": "4,0"})
    assert detect_scale(s).scale == "linear"
    t = resolve_auto(AutoTransform(), s, 1, s.linear_column(1), detect_scale(s))
    assert isinstance(t, LogicleTransform) and t.T == pytest.approx(1e4)


def test_logicle_width_is_flowcores_estimate():
    """W = (M - log10(T / |r|)) / 2, r = 5th percentile of the negative values (hand values)."""
    neg = -np.arange(1, 101, dtype=float)  # 5th percentile of -100..-1 (numpy linear) = -95.05
    x = np.r_[neg, np.full(900, 1000.0)]
    r = abs(np.percentile(neg, 5))
    assert r == pytest.approx(95.05)
    expect = (4.5 - math.log10(262144 / r)) / 2
    assert logicle_width(x, 262144.0, 4.5) == pytest.approx(expect)
    assert logicle_width(np.full(100, 5.0), 262144.0, 4.5) == 0.0  # no negatives
    assert logicle_width(np.r_[-1e6, np.ones(20)], 262144.0, 4.5) == 0.0  # |r| >= T


def test_auto_resolves_per_scale():
    fsc = RNG.uniform(2e4, 2e5, (3000, 1))
    names = ["FSC-A", "FL1-A"]
    log = _sample(np.hstack([fsc, RNG.normal(2, 0.5, (3000, 1))]), names)
    ch = _sample(np.hstack([fsc, RNG.normal(2000, 500, (3000, 1)).clip(0, 4095)]), names)
    for s, want in ((log, LinearTransform(T=4.5, A=0)), (ch, LinearTransform(T=4096, A=0))):
        info = detect_scale(s)
        assert resolve_auto(AutoTransform(), s, 1, s.linear_column(1), info) == want
        assert resolve_auto(AutoTransform(), s, 0, s.linear_column(0), info) == LinearTransform(
            T=262144.0, A=0
        )
    with pytest.raises(TransformError, match="resolved against each file"):
        AutoTransform().apply(np.zeros(3))


def test_usual_spellings_of_markers():
    chans = ["FSC-A", "FSC-H", "V500-A", "BV650-A", "PE-A", "APC-A", "FITC-A"]
    marks = ["", "", "L/D Aqua - Viability", "BV650 - CD8a", "Foxp3-IgM", "HLADr", "Live/ Dead"]
    idx = {n: resolve(chans, marks, n) for n in ("CD8", "FoxP3", "FOXP3", "HLA-DR")}
    assert {n: chans[i] for n, i in idx.items()} == {
        "CD8": "BV650-A", "FoxP3": "PE-A", "FOXP3": "PE-A", "HLA-DR": "APC-A"
    }  # fmt: skip
    # a name (or a template alias) matching a label wins over the usual other spellings: with two
    # viability labels, 'Viability' finds its own word and 'Live' its own
    assert chans[resolve(chans, marks, "Viability")] == "V500-A"
    assert chans[resolve(chans, marks, "Live")] == "FITC-A"
    assert chans[resolve(chans, marks[:6] + [""], "Live")] == "V500-A"  # then by synonym
    # two labels with the same word: ambiguous, both named
    with pytest.raises(MarkerError, match="more than one channel"):
        resolve(["A", "B"], ["CD3 PE", "CD3 APC"], "CD3")
    # scatter names only as whole names: FSC-A is not the word FSC of FSC-H
    assert resolve(["SSC", "FSC"], ["", ""], "FSC-A") == 1
    with pytest.raises(MarkerError, match="not in the file"):
        resolve(["FSC-H", "SSC-H"], ["FSC-Height", "SSC-Height"], "FSC-A")


def test_marker_csv_per_file_and_errors(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("channel,marker,file\nFL1-H,CD4,\nFL2-H,CD8,\nFL2-H,CD3,b.fcs\n")
    mm = read_marker_csv(f)
    assert mm.for_file("a.fcs") == {"FL1-H": "CD4", "FL2-H": "CD8"}
    assert mm.for_file("/data/b.fcs") == {"FL1-H": "CD4", "FL2-H": "CD3"}
    bad = tmp_path / "bad.csv"
    bad.write_text("chan,marker\nFL1-H,CD4\n")
    with pytest.raises(MarkerError, match="needs the columns channel,marker"):
        read_marker_csv(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("channel,marker\nFL1-H,CD4\nFL1-H,CD8\n")
    with pytest.raises(MarkerError, match="line 3.*already has a marker on line 2"):
        read_marker_csv(dup)


def test_read_fcs_markers_mapping_on_a_real_file():
    f = shared_path("gatingml2", "data1.fcs")
    s = cytophen.read_fcs(f, markers={"FL2-A": "CD45", "fl1_h": "CD4 (relabelled)"})
    assert s.markers[s.channels.index("FL2-A")] == "CD45"
    assert s.markers[s.channels.index("FL1-H")] == "CD4 (relabelled)"  # matched ignoring case/_
    with pytest.raises(MarkerError, match="not a channel of the file"):
        cytophen.read_fcs(f, markers={"FL9-H": "CD45"})


def test_cli_gate_markers_and_scale(tmp_path):
    """`cytophen gate --markers` names channels of a file without $PnS; `--scale` is recorded."""
    import json

    from click.testing import CliRunner

    from cytophen.cli import cli
    from cytophen.io.fcs import write_fcs

    src = cytophen.read_fcs(shared_path("real", "wholeblood_itn", "ITN_sample01.fcs"))
    f = tmp_path / "anon.fcs"
    write_fcs(f, src.events, src.channels, markers=[""] * len(src.channels))
    csv = tmp_path / "markers.csv"
    csv.write_text("channel,marker\nCD3,CD3\nCD4,CD4\nCD8,CD8\n")
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        ["gate", str(f), "-t", "tcell", "-o", str(out), "-q", "--markers", str(csv),
         "--scale", "linear"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    import pandas as pd

    tab = pd.read_csv(out / "populations.csv").set_index("population")
    assert tab.loc["cd4", "measured"] and tab.loc["cd4", "count"] > 0
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"][0]["scale"]["scale"] == "linear"
    assert run["inputs"][0]["scale"]["detected"] is False
    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n")
    r = CliRunner().invoke(cli, ["gate", str(f), "-t", "tcell", "-o", str(tmp_path / "o2"),
                                 "--markers", str(bad)])  # fmt: skip
    assert r.exit_code == 2 and "channel,marker" in r.output
