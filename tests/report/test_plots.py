"""Gating plots: ticks in data units on logicle/log/linear axes, each gate kind drawn where its geometry
says, parent populations plotted, hierarchy figures, and the per-sample PNGs the batch writes.

References: flowutils' logicle (FlowKit's C code of the GatingML 2.0 transform), hand calculations
of the GatingML formulas, the geometric definition of each gate, the simulator's labels and the
GatingML 2.0 truth counts for data1.fcs.
"""

from __future__ import annotations

import io
import json
import math

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cytophen.errors import ReportError
from cytophen.report.plots import (
    axis_ticks,
    ellipse_parameters,
    gate_panels,
    plot_gate,
    plot_result,
    save_sample_plots,
)
from report_support import FALLBACK_REASON, RefFlog, RefLogicle, gate_sample


def _edges(ax):
    return [ln for ln in ax.get_lines() if ln.get_gid() == "gate-edge"]


def _label_texts(ax):
    return [t.get_text() for t in ax.texts if t.get_gid() == "gate-label"]


def _label_names(ax):
    """The population each label names (a label is ``name\npercent`` or ``name percent``)."""
    return sorted(t.split("\n")[0].split(" ")[0] for t in _label_texts(ax))


# --------------------------------------------------------------------------------------------
# ticks
# --------------------------------------------------------------------------------------------
def test_logicle_ticks_are_decades_at_the_reference_positions():
    L = RefLogicle(T=262144, W=0.5, M=4.5, A=0)
    lo, hi = (float(v) for v in L.apply(np.array([-2000.0, 262144.0])))
    pos, labels, minor = axis_ticks(L, lo, hi)
    values = {"0": 0.0, "$10^{3}$": 1e3, "$10^{4}$": 1e4, "$10^{5}$": 1e5}
    for lab, v in values.items():
        assert lab in labels, labels
        # position of each label is flowutils' logicle of the value it names
        assert pos[labels.index(lab)] == pytest.approx(float(L.apply(np.array([v]))[0]), abs=1e-9)
    # by hand (GatingML 2.0): with A = 0 the zero sits at W / (M + A) = 0.5 / 4.5 of the scale
    assert pos[labels.index("0")] == pytest.approx(0.5 / 4.5, abs=1e-6)
    assert np.all(np.diff(pos) > 0)
    # no two labels crowd each other (the decades 10^0..10^2 fall in the linear region)
    assert np.min(np.diff(pos)) >= 0.1 * (hi - lo) - 1e-12
    assert minor.size > 0 and np.all((minor >= lo) & (minor <= hi))


def test_ticks_on_cytophens_own_logicle_sit_where_flowutils_puts_the_values():
    from cytophen.transforms import LogicleTransform

    ours, ref = (
        LogicleTransform(T=262144, W=0.5, M=4.5, A=0),
        RefLogicle(T=262144, W=0.5, M=4.5, A=0),
    )
    lo, hi = -0.05, 1.0
    pos, labels, _ = axis_ticks(ours, lo, hi)
    assert labels == ["0", "$10^{3}$", "$10^{4}$", "$10^{5}$"]
    np.testing.assert_allclose(pos, ref.apply(np.array([0.0, 1e3, 1e4, 1e5])), atol=1e-9)


def test_logicle_ticks_show_negative_decades_when_the_axis_reaches_them():
    L = RefLogicle(T=262144, W=1.0, M=4.5, A=1.0)
    lo, hi = (float(v) for v in L.apply(np.array([-30000.0, 262144.0])))
    pos, labels, _ = axis_ticks(L, lo, hi)
    assert "$-10^{4}$" in labels and "0" in labels and "$10^{5}$" in labels
    assert pos[labels.index("$-10^{4}$")] == pytest.approx(
        float(L.apply(np.array([-1e4]))[0]), abs=1e-9
    )
    assert pos[labels.index("$-10^{4}$")] < pos[labels.index("0")]


def test_flog_ticks_have_no_zero_and_sit_at_exact_decades():
    F = RefFlog(T=10000, M=5)  # y = 1 + log10(x / 10000) / 5
    pos, labels, _ = axis_ticks(F, 0.0, 1.0)  # 0.1 ... 10^4 (y = 0 at x = T * 10^-M)
    assert "0" not in labels
    assert labels == ["$10^{-1}$", "$10^{0}$", "$10^{1}$", "$10^{2}$", "$10^{3}$", "$10^{4}$"]
    np.testing.assert_allclose(pos, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], atol=1e-12)


def test_linear_ticks_use_data_units():
    pos, labels, minor = axis_ticks(None, 0, 250_000)
    assert labels == ["0", "50K", "100K", "150K", "200K", "250K"]
    np.testing.assert_allclose(pos, [0, 50_000, 100_000, 150_000, 200_000, 250_000])
    pos, labels, _ = axis_ticks(None, 0, 1)
    assert labels[0] == "0" and labels[-1] == "1"


# --------------------------------------------------------------------------------------------
# each gate kind
# --------------------------------------------------------------------------------------------
@pytest.fixture
def cloud():
    r = np.random.default_rng(1)
    return np.column_stack([r.uniform(0, 1, 4000), r.uniform(0, 1, 4000)])


def test_rectangle_with_open_sides_draws_only_its_closed_edges(cloud):
    geom = {"kind": "rectangle", "dims": ["x", "y"], "min": [0.2, None], "max": [None, 0.7]}
    ax = plot_gate(cloud, geom, name="gate", percent=12.5)
    edges = _edges(ax)
    assert len(edges) == 2
    vertical = [ln for ln in edges if ln.get_xdata()[0] == ln.get_xdata()[1]]
    horizontal = [ln for ln in edges if ln.get_ydata()[0] == ln.get_ydata()[1]]
    assert [ln.get_xdata()[0] for ln in vertical] == [0.2]
    assert [ln.get_ydata()[0] for ln in horizontal] == [0.7]
    assert any("12.5%" in t for t in _label_texts(ax))


def test_density_is_a_modest_2d_histogram_of_all_events(cloud):
    ax = plot_gate(cloud, None, bins=64)
    img = next(im for im in ax.get_images() if im.get_gid() == "density")
    arr = img.get_array()
    assert arr.shape == (64, 64)
    assert int(arr.filled(0).sum()) == len(
        cloud
    )  # every event lands in one bin (clipped to the view)
    assert np.ma.is_masked(arr) or arr.min() >= 1  # empty bins are masked (white)


def test_one_dimensional_range_gate_is_a_histogram_with_its_bound():
    x = np.random.default_rng(2).normal(0.5, 0.1, 3000)
    geom = {"kind": "rectangle", "dims": ["CD19"], "min": [0.45], "max": [None]}
    ax = plot_gate(x, geom, name="bcells", percent=30.0, dims=["CD19"])
    edges = _edges(ax)
    assert len(edges) == 1 and edges[0].get_xdata()[0] == 0.45
    assert ax.get_ylabel() == "events" and not ax.get_images()


def test_polygon_is_drawn_through_its_vertices(cloud):
    verts = [[0.1, 0.1], [0.6, 0.15], [0.5, 0.8], [0.15, 0.6]]
    ax = plot_gate(cloud, {"kind": "polygon", "dims": ["x", "y"], "vertices": verts})
    patch = next(p for p in ax.patches if p.get_gid() == "gate-edge")
    np.testing.assert_allclose(patch.get_xy()[:4], verts)
    np.testing.assert_allclose(patch.get_xy()[-1], verts[0])  # closed


@pytest.mark.parametrize(
    "mean,cov,d2",
    [
        ([0.5, 0.4], [[0.02, 0.0], [0.0, 0.005]], 1.0),
        ([0.4, 0.6], [[0.01, 0.006], [0.006, 0.008]], 4.0),
        ([0.5, 0.5], [[0.01, -0.004], [-0.004, 0.003]], 2.5),
    ],
)
def test_ellipse_boundary_is_the_gate_boundary(cloud, mean, cov, d2):
    geom = {
        "kind": "ellipsoid",
        "dims": ["x", "y"],
        "mean": mean,
        "covariance": cov,
        "distance_square": d2,
    }
    ax = plot_gate(cloud, geom)
    patch = next(p for p in ax.patches if p.get_gid() == "gate-edge")
    t = np.linspace(0, 2 * np.pi, 50)
    pts = patch.get_patch_transform().transform(np.column_stack([np.cos(t), np.sin(t)]))
    inv = np.linalg.inv(np.asarray(cov))
    d = pts - np.asarray(mean)
    # every boundary point satisfies (x - mean)^T inv(cov) (x - mean) = distance_square
    np.testing.assert_allclose(np.einsum("ij,jk,ik->i", d, inv, d), d2, rtol=1e-9)


def test_three_d_ellipsoid_is_drawn_as_its_shadow():
    cov = np.array([[0.02, 0.005, 0.004], [0.005, 0.01, 0.002], [0.004, 0.002, 0.03]])
    mean, d2 = np.array([0.5, 0.5, 0.5]), 2.0
    (cx, cy), w, h, ang = ellipse_parameters(mean, cov, d2)
    # the projection of {x: x' inv(C) x <= D2} onto (x1, x2) reaches x1 = mean +- sqrt(D2 * C11)
    a, b = w / 2, h / 2
    th = math.radians(ang)
    half_width_x = math.sqrt((a * math.cos(th)) ** 2 + (b * math.sin(th)) ** 2)
    assert half_width_x == pytest.approx(math.sqrt(d2 * cov[0, 0]), rel=1e-9)
    half_height_y = math.sqrt((a * math.sin(th)) ** 2 + (b * math.cos(th)) ** 2)
    assert half_height_y == pytest.approx(math.sqrt(d2 * cov[1, 1]), rel=1e-9)
    geom = {
        "kind": "ellipsoid",
        "dims": ["x", "y", "z"],
        "mean": mean.tolist(),
        "covariance": cov.tolist(),
        "distance_square": d2,
    }
    r = np.random.default_rng(3).uniform(0, 1, (500, 3))
    ax = plot_gate(r, geom)
    assert any("projection" in t.get_text() for t in ax.texts)


def test_half_space_gate_is_drawn_as_its_boundary_across_the_data():
    """mixture_halfspace's gate is a ball 10^4 times the data's span: the view follows the data and
    the drawn line is where the gate's membership changes (in the slice at the median of the
    third dimension), not a projection of the ball."""
    from cytophen.datadriven import MixtureHalfspace
    from cytophen.gates import Dim

    rng = np.random.default_rng(5)
    neg = rng.normal([0.2, 0.55, 0.5], 0.05, (3000, 3))
    pos = rng.normal([0.55, 0.68, 0.36], 0.05, (500, 3))
    x = np.vstack([neg, pos])
    est = MixtureHalfspace().fit(x)
    g = est.to_gate((Dim("CD27"), Dim("CD24"), Dim("CD38")))
    geom = g.geometry()
    ax = plot_gate(x, geom, dims=["CD27", "CD24", "CD38"])
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x1 - x0 < 2.0 and y1 - y0 < 2.0  # the data's range, not the ball's
    assert any("half-space" in t.get_text() for t in ax.texts)
    segs = [p for c in ax.collections for p in c.get_paths()]
    pts = np.vstack([p.vertices for p in segs])
    assert len(pts) > 10
    # along the drawn line the gate changes: points just either side of it (in the slice at the
    # third dimension's median) are inside on one side and outside on the other
    z = np.median(x[:, 2])
    normal = np.asarray(geom["mean"][:2]) - pts  # the ball's centre lies inside, far away
    normal /= np.linalg.norm(normal, axis=1)[:, None]
    eps = 1e-3 * (x1 - x0)
    inside = g.contains(np.column_stack([pts + eps * normal, np.full(len(pts), z)]))
    outside = g.contains(np.column_stack([pts - eps * normal, np.full(len(pts), z)]))
    assert inside.mean() > 0.95 and outside.mean() < 0.05


def test_quadrants_are_drawn_at_their_cuts_with_one_label_each(cloud):
    geom = {
        "kind": "quadrant",
        "dims": ["IgD", "CD27"],
        "quadrants": {
            "naive": {"min": [0.55, None], "max": [None, 0.4]},
            "unswitched": {"min": [0.55, 0.4], "max": [None, None]},
            "switched": {"min": [None, 0.4], "max": [0.55, None]},
            "dn": {"min": [None, None], "max": [0.55, 0.4]},
        },
    }
    pct = {"naive": 40.0, "unswitched": 10.0, "switched": 20.0, "dn": 30.0}
    ax = plot_gate(cloud, geom, quadrant_percents=pct, quadrant="dn")
    xs = {ln.get_xdata()[0] for ln in _edges(ax) if ln.get_xdata()[0] == ln.get_xdata()[1]}
    ys = {ln.get_ydata()[0] for ln in _edges(ax) if ln.get_ydata()[0] == ln.get_ydata()[1]}
    assert xs == {0.55} and ys == {0.4}
    assert _label_names(ax) == sorted(pct)
    assert "dn 30.0%" in [lab.replace("\n", " ") for lab in _label_texts(ax)]
    assert (
        len([p for p in ax.patches if p.get_gid() == "gate-fill"]) == 1
    )  # the highlighted quadrant


def test_a_gate_that_fell_back_is_marked(cloud):
    geom = {"kind": "rectangle", "dims": ["x"], "min": [0.3], "max": [None]}
    ax = plot_gate(cloud[:, 0], geom, fell_back=True, reason=FALLBACK_REASON)
    assert any(t.get_gid() == "fell-back" for t in ax.texts)
    edge = _edges(ax)[0]
    assert edge.get_linestyle() == "--"
    assert any(FALLBACK_REASON[:20] in t.get_text() for t in ax.texts)


# --------------------------------------------------------------------------------------------
# from a GatingResult
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gated():
    return gate_sample(0, fell_back=True)


#: Tree order of the test template's populations (depth first, children in template order).
_TREE = ["lymphocytes", "bcells", "naive", "unswitched", "switched", "dn", "plasmablasts",
         "ellipse", "cd27pos", "not_naive"]  # fmt: skip
#: Its plots (FlowJo's layout): one per parent and axes. On bcells' IgD x CD27: the quadrants,
#: the rectangle, the ellipse and not_naive (the outside of the naive quadrant).
_PLOTS = {
    "lymphocytes": ["lymphocytes"],
    "bcells": ["bcells"],
    "naive": ["naive", "unswitched", "switched", "dn", "plasmablasts", "ellipse", "not_naive"],
    "cd27pos": ["cd27pos"],
}


def test_hierarchy_is_the_tree_and_one_plot_per_parent_and_axes(gated):
    res, _ = gated
    fig = res.plot()
    assert isinstance(fig, Figure)
    panels, booleans = gate_panels(res)
    assert {p.key: p.populations for p in panels} == _PLOTS
    assert [p.key for p in panels] == list(_PLOTS)
    assert booleans == []  # not_naive is drawn
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == len(panels)
    # every population labelled once, on the plot of its parent and axes
    for ax, p in zip(drawn, panels):
        assert _label_names(ax) == sorted(p.populations)
    # the tree: one row per population, in tree order, with its count
    tree = [t for ax in fig.axes for t in ax.texts if (t.get_gid() or "").startswith("tree:")]
    assert [t.get_gid()[5:] for t in tree] == _TREE
    counts = {t.get_text() for ax in fig.axes for t in ax.texts}
    for pop in _TREE:
        assert any(f"{res.count(pop):>8,}" in c for c in counts), pop
    # the data-driven gate fell back on this sample: its plot (and its tree row) says so
    assert any(t.get_gid() == "fell-back" for t in drawn[3].texts)
    assert not any(t.get_gid() == "fell-back" for ax in drawn[:3] for t in ax.texts)


def test_a_boolean_no_plot_can_show_is_listed_with_its_expression():
    """An ``or`` of two quadrants is no region of one gate: it is listed under the tree, and its
    plot is its expression with its percent (by hand: the two quadrants' counts over B cells)."""
    import dataclasses

    from cytophen.engine import gate
    from cytophen.gates import BooleanGate
    from cytophen.template import Population
    from report_support import make_template, simulate

    t = make_template()
    memory = Population("memory", "bcells", BooleanGate("or", [("unswitched", False),
                                                              ("switched", False)]))  # fmt: skip
    t = dataclasses.replace(t, populations=[p for p in t.populations if p.name != "cd27pos"]
                            + [memory])  # fmt: skip
    sample, _ = simulate(4, 6000)
    res = gate(sample, t, sample_id="S04")
    panels, booleans = gate_panels(res)
    assert booleans == [("memory", "unswitched or switched")]
    pct = 100.0 * (res.count("unswitched") + res.count("switched")) / res.count("bcells")
    fig = res.plot()
    listed = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "booleans"]
    assert listed and f"memory = unswitched or switched: {pct:.1f}%" in listed[0]
    one = res.plot("memory")
    assert any("memory = unswitched or switched" in t.get_text() and f"{pct:.1f}%" in t.get_text()
               for t in one.axes[0].texts)  # fmt: skip


def test_figures_show_themselves_in_a_notebook(gated):
    res, _ = gated
    for fig in (res.plot(), res.plot("bcells")):
        png = fig._repr_png_()  # what IPython calls to display the returned Figure
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_each_panel_plots_its_parent_population(gated):
    res, labels = gated
    fig = res.plot(bins=64)
    tbl = res.table.set_index("population")
    drawn = [a for a in fig.axes if a.axison]
    assert len(drawn) == len(_PLOTS)
    for ax, pop in zip(drawn, _PLOTS):
        ims = [im for im in ax.get_images() if im.get_gid() == "density"]
        if ims:
            n = int(ims[0].get_array().filled(0).sum())
        else:  # 1-D gate: the histogram's bars
            n = int(
                next(p for p in ax.patches if p.get_gid() == "histogram").get_data().values.sum()
            )
        assert n == int(tbl.loc[pop, "parent_count"]), pop
    # and against the simulator: the polygon holds exactly the lymphocyte-labelled events
    assert tbl.loc["lymphocytes", "count"] == int(labels["lymph"].sum())


def test_histogram_counts_are_the_parent_events(gated):
    res, labels = gated
    fig = res.plot("bcells", bins=50)
    ax = fig.axes[0]
    steps = [c for c in ax.patches if c.get_gid() == "histogram"]
    assert steps
    # the simulator: the parent of bcells (lymphocytes) holds exactly the lymphocyte-labelled events
    heights = steps[0].get_data().values
    assert int(heights.sum()) == int(labels["lymph"].sum())


def test_single_population_lookup_is_case_insensitive(gated):
    res, _ = gated
    fig = res.plot("DN")
    ax = fig.axes[0]
    assert "dn" in _label_names(ax)
    # the asked-for population is the one shaded, and its label is bold
    assert len([p for p in ax.patches if p.get_gid() == "gate-fill"]) == 1
    bold = [t.get_text() for t in ax.texts if t.get_gid() == "gate-label"
            and t.get_fontweight() == "bold"]  # fmt: skip
    assert [b.split("\n")[0].split(" ")[0] for b in bold] == ["dn"]
    with pytest.raises(
        ReportError,
        match="no population 'transitional' in this result; the template has: lymphocytes",
    ):
        res.plot("transitional")


def test_a_result_without_events_cannot_be_plotted_and_says_why(gated):
    import dataclasses

    res, _ = gated
    bare = dataclasses.replace(res, sample=None)
    with pytest.raises(ReportError, match="carries no events"):
        plot_result(bare)


def test_a_not_gate_is_drawn_as_the_outside_of_its_operand(gated):
    """not_naive is the B cells outside the naive quadrant: its plot is the quadrant plot with
    that outside shaded, and the events outside the drawn quadrant are exactly not_naive's (the
    simulator's B cells, by hand: every B cell not in naive)."""
    res, labels = gated
    fig = res.plot("not_naive")
    ax = fig.axes[0]
    region = next(p for p in ax.patches if p.get_gid() == "region-outside:not_naive")
    path = region.get_path().transformed(region.get_patch_transform())
    ev = res.events("bcells")
    inside = path.contains_points(ev[["IgD", "CD27"]].to_numpy())
    outside = np.zeros(res.n_events, dtype=bool)
    outside[ev.index.to_numpy()[~inside]] = True
    assert np.array_equal(outside, res.membership("not_naive"))
    assert np.array_equal(outside, res.membership("bcells") & ~res.membership("naive"))
    assert any(p.get_gid() == "gate-fill" for p in ax.patches)  # shaded: the one asked for
    label = next(t for t in ax.texts if t.get_text().startswith("not_naive"))
    assert label.get_fontweight() == "bold" and not path.contains_point(label.get_position())


def test_save_sample_plots_writes_one_png_per_gate_and_an_index(tmp_path, gated):
    res, _ = gated
    files = save_sample_plots(res, tmp_path / "plots", folder="S00_safe")
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == len(_PLOTS) and all(f.parent.name == "S00_safe" for f in files)
    for f in pngs:
        img = mpimg.imread(f)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        # not blank: a density or histogram was drawn
        assert np.unique(img.reshape(-1, img.shape[2]), axis=0).shape[0] > 20
    meta = json.loads((tmp_path / "plots" / "S00_safe" / "plots.json").read_text())
    assert meta["sample"] == "S00" and meta["template_hash"] == res.template_hash
    by_gate = {p["gate"]: p for p in meta["plots"]}
    assert (
        by_gate["cd27pos"]["fell_back"] is True and by_gate["cd27pos"]["reason"] == FALLBACK_REASON
    )
    assert by_gate["lymphocytes"]["fell_back"] is False
    exp = float(res.table.set_index("population").loc["dn", "percent_of_parent"])
    assert by_gate["naive"]["percent_of_parent"]["dn"] == pytest.approx(exp)
    assert {g: p["populations"] for g, p in by_gate.items()} == _PLOTS
    # the tree and the roles the report needs
    assert [r["population"] for r in meta["tree"]] == _TREE
    assert meta["hidden"] == [] and all(p["measured"] for p in meta["plots"])
    assert not list((tmp_path / "plots").rglob("*.tmp"))


# --------------------------------------------------------------------------------------------
# real data: GatingML 2.0 Range1 on data1.fcs (truth: 440 events, FSC-H >= 100 after gain)
# --------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*TEXT is not valid UTF-8")  # data1.fcs: a named, loud repair
def test_range_gate_on_real_fcs_matches_gatingml_truth(tmp_path):
    import cytophen
    from conftest import shared_path
    from cytophen.gates import Dim, RectangleGate
    from cytophen.template import Population, Template

    fcs = shared_path("gatingml2", "data1.fcs")
    truth = shared_path("gatingml2", "truth", "Results_Range1.txt")
    expected = int(pd.read_csv(truth, header=None, dtype="bool").squeeze().values.sum())
    t = Template(
        "range", [Population("Range1", None, RectangleGate([Dim("FSC-H")], [100.0], [None]))]
    )
    res = cytophen.gate(cytophen.read_fcs(fcs), t)
    assert res.count("Range1") == expected == 440
    fig = res.plot("Range1")
    ax = fig.axes[0]
    pct = 100.0 * expected / 13367
    assert any(f"{pct:.1f}%" in t for t in _label_texts(ax))
    assert [ln.get_xdata()[0] for ln in _edges(ax)] == [100.0]
    fig.savefig(tmp_path / "range1.png")


def test_a_gate_that_cannot_be_drawn_does_not_cost_the_other_plots(tmp_path):
    res, _ = gate_sample(2)
    res.gates["ellipse"] = dict(
        res.gates["ellipse"], geometry={"kind": "ellipsoid", "dims": ["IgD", "CD27"]}
    )
    fig = res.plot()
    errs = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "plot-error"]
    assert len(errs) == 1 and "ellipse: cannot draw" in errs[0].get_text()
    # its siblings on the same axes are still drawn and labelled
    ax = next(a for a in fig.axes if errs[0] in a.texts)
    assert _label_names(ax) == sorted(p for p in _PLOTS["naive"] if p != "ellipse")
    files = save_sample_plots(res, tmp_path)
    meta = json.loads(files[-1].read_text())
    bad = [p for p in meta["plots"] if p["error"]]
    assert [p["gate"] for p in bad] == ["naive"] and "ellipse: cannot draw" in bad[0]["error"]
    assert len([f for f in files if f.suffix == ".png"]) == len(_PLOTS)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_empty_or_tiny_parents_and_nans_still_plot(n):
    geom = {"kind": "rectangle", "dims": ["x", "y"], "min": [0.2, 0.3], "max": [0.6, None]}
    vals = np.full((n, 2), 0.5)
    if n:
        vals[0] = [np.nan, 0.4]  # NaN is never drawn (nor inside any gate)
    ax = plot_gate(vals, geom, name="g", percent=float("nan"), bins=32)
    img = next(im for im in ax.get_images() if im.get_gid() == "density")
    assert int(img.get_array().filled(0).sum()) == max(n - 1, 0)
    assert "g\nn/a" in _label_texts(ax)
    ax1 = plot_gate(vals[:, 0], {"kind": "rectangle", "dims": ["x"], "min": [None], "max": [0.4]})
    assert [ln.get_xdata()[0] for ln in _edges(ax1)] == [0.4]  # open below: one edge
    ax1.figure.savefig(io.BytesIO(), format="png")


# --------------------------------------------------------------------------------------------
# readable axes and figures
# --------------------------------------------------------------------------------------------
def _drawn_canvas(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _tick_label_boxes(ax, axis, renderer):
    lo, hi = sorted(axis.get_view_interval())
    return [
        t.label1.get_window_extent(renderer)
        for t in axis.get_major_ticks()
        if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi
    ]


@pytest.mark.parametrize("size,dpi", [((2.9, 2.7), 80), ((3.1, 2.9), 160), ((6, 5), 100)])
@pytest.mark.parametrize("W", [0.5, 1.0, 1.8])
def test_decade_labels_never_overlap_whatever_the_plot_size(size, dpi, W):
    """A wide logicle linear region crowds 0, 10, 100 together ("010¹010⁵"): at draw time only
    the decades whose labels fit are labelled, measured on the drawn figure."""
    L = RefLogicle(T=262144, W=W, M=4.5, A=0)
    r = np.random.default_rng(7)
    x = L.apply(np.concatenate([r.normal(0, 300, 3000), r.lognormal(9, 1.2, 3000)]))
    y = L.apply(np.concatenate([r.lognormal(7, 1.5, 3000), r.normal(0, 200, 3000)]))
    fig = Figure(figsize=size, dpi=dpi)
    ax = fig.add_subplot()
    plot_gate(np.column_stack([x, y]), None, ax=ax, transforms=[L, L], dims=["CD27 (B3-A)", "IgD"])
    renderer = _drawn_canvas(fig)
    for axis in (ax.xaxis, ax.yaxis):
        boxes = _tick_label_boxes(ax, axis, renderer)
        assert len(boxes) >= 2, [t.get_text() for t in axis.get_ticklabels()]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), (axis.axis_name, a, b)
    # the labels are decades at their logicle positions
    for t in ax.xaxis.get_major_ticks():
        text = t.label1.get_text()
        if text.startswith("$10^"):
            v = 10.0 ** int(text[5:-2])
            assert t.get_loc() == pytest.approx(float(L.apply(np.array([v]))[0]), abs=1e-9)


def test_axes_are_labelled_marker_and_channel_never_empty_brackets():
    """Channels named by the template with a $PnS marker read 'marker (channel)'; a marker named
    by the template reads 'marker (channel)'; a blank $PnS (' ') is no marker: 'SSC-A'."""
    from cytophen.engine import gate
    from cytophen.gates import Dim, PolygonGate, QuadrantGate
    from cytophen.io.sample import Sample
    from cytophen.template import Population, Template
    from report_support import CHANNELS, simulate

    base, _ = simulate(1, 3000)
    sample = Sample(base.events, list(CHANNELS), [" ", " ", "CD19", "IgD", "CD27"])
    lym = PolygonGate([Dim("FSC-A"), Dim("SSC-A")],
                      [[30_000, 0], [95_000, 0], [95_000, 40_000], [30_000, 40_000]])  # fmt: skip
    L = RefLogicle()
    quad = QuadrantGate.from_cuts([Dim("B2-A", L), Dim("CD27", L)], 0.4, 0.4, {"++": "dp"})
    t = Template("labels", [Population("lymphocytes", None, lym),
                            Population("dp", "lymphocytes", quad, quadrant="dp")])  # fmt: skip
    res = gate(sample, t)
    ax1 = res.plot("lymphocytes").axes[0]
    assert (ax1.get_xlabel(), ax1.get_ylabel()) == ("FSC-A", "SSC-A")
    ax2 = res.plot("dp").axes[0]
    assert (ax2.get_xlabel(), ax2.get_ylabel()) == ("IgD (B2-A)", "CD27 (B3-A)")


def test_a_polygon_far_beyond_the_data_does_not_stretch_the_axes(cloud):
    """anchored_transitional's half-plane polygons reach far past the events: the view follows
    the events (and a little of the gate), the polygon is clipped, and its region stays exact."""
    verts = [[0.6, 0.6], [40.0, 0.6], [40.0, 55.0], [0.6, 55.0]]
    ax = plot_gate(cloud, {"kind": "polygon", "dims": ["x", "y"], "vertices": verts}, name="t")
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x1 - x0 < 1.5 and y1 - y0 < 1.5  # the data span 1, not 40
    region = next(p for p in ax.patches if p.get_gid() == "region:t")
    inside = region.get_path().transformed(region.get_patch_transform()).contains_points(cloud)
    assert np.array_equal(inside, (cloud[:, 0] > 0.6) & (cloud[:, 1] > 0.6))
    label = next(t for t in ax.texts if t.get_gid() == "gate-label")
    lx, ly = label.get_position()
    assert 0.6 < lx < x1 and 0.6 < ly < y1  # inside the gate, in view


def test_a_cut_above_every_event_is_shown(cloud):
    """A fallen-back cut above all events is what a reviewer must see: the view reaches it."""
    geom = {"kind": "rectangle", "dims": ["x", "y"], "min": [None, 1.6], "max": [None, None]}
    ax = plot_gate(cloud, geom, name="high", fell_back=True, reason="1 density peak")
    assert ax.get_ylim()[1] > 1.6 and ax.get_ylim()[1] - ax.get_ylim()[0] < 3
    assert [ln.get_ydata()[0] for ln in _edges(ax)] == [1.6]
    label = next(t for t in ax.texts if t.get_gid() == "gate-label")
    assert label.get_position()[1] > 1.6


def _boxes_disjoint(boxes):
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert w <= 1 or h <= 1, (a, b)


def test_the_hierarchy_figure_lays_out_its_plots_without_overlap(gated):
    """Every plot with its title, tick labels and axis labels inside the figure, none on another."""
    res, _ = gated
    fig = res.plot()
    renderer = _drawn_canvas(fig)
    page = fig.bbox
    boxes = []
    for ax in fig.axes:
        if not ax.axison:
            continue
        box = ax.get_tightbbox(renderer)
        assert box.x0 >= page.x0 - 1 and box.y0 >= page.y0 - 1, box
        assert box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1, box
        assert ax.bbox.width > 100 and ax.bbox.height > 100
        boxes.append(box)
    _boxes_disjoint(boxes)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_population_not_measured_plots_a_readable_message_not_a_squeezed_axis():
    """plot('dn2') on a file without CD21/CD11c: a full-size panel saying why, its text inside."""
    import warnings

    from conftest import shared_path
    from real_references import CASES, gate_case

    case = next(c for c in CASES if c.id == "flowdensity/sampleFCS_1/bcell")
    shared_path("real", case.file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gate_case(case)
    for pop in ("dn2", "dn1", "activated_naive"):
        fig = res.plot(pop)
        renderer = _drawn_canvas(fig)
        ax = fig.axes[0]
        assert ax.bbox.width > 0.6 * fig.bbox.width and ax.bbox.height > 0.5 * fig.bbox.height
        texts = [t for t in ax.texts if t.get_text()]
        assert any("not measured" in t.get_text() and "CD21" in t.get_text() for t in texts)
        for t in texts:
            box = t.get_window_extent(renderer)
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, t.get_text()
    # and the whole sample: the tree marks them, no empty plot is drawn for them
    fig = res.plot()
    rows = {t.get_gid()[5:]: t for ax in fig.axes for t in ax.texts
            if (t.get_gid() or "").startswith("tree:")}  # fmt: skip
    helpers = {p.name for p in res.template.populations if p.hidden}
    assert helpers and {"dn1", "dn2", "activated_naive"} | helpers <= set(rows)
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == len([p for p in gate_panels(res)[0] if p.drawn])


def test_view_limits_leave_far_junk_out_of_view_but_keep_every_cut():
    """1.6 % of a real file's SSC-A events sit near -7e6 (flowAI Bcells1): the axis follows the
    cells, not the junk; a cut placed out there would still be shown."""
    from cytophen.report.ticks import view_limits

    rng = np.random.default_rng(0)
    cells = rng.normal(60_000, 15_000, 20_000)
    junk = rng.uniform(-7.4e6, -6.8e6, 330)
    lo, hi = view_limits(np.concatenate([cells, junk]), None)
    assert -60_000 < lo < cells.min() + 20_000 and hi > np.percentile(cells, 99.5)
    # without the junk the range is the cells' own
    lo2, hi2 = view_limits(cells, None)
    assert abs(lo - lo2) < 0.1 * (hi2 - lo2) and abs(hi - hi2) < 0.1 * (hi2 - lo2)
    # a cut at 300 000 widens the view to show it
    _, hi3 = view_limits(np.concatenate([cells, junk]), None, cuts=[300_000])
    assert hi3 > 300_000
