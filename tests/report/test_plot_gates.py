"""What you see is what you count: every reported population of the shipped templates, plotted with
``result.plot(population)``, is drawn as a region whose events are exactly the population.

The check reads the figure alone: the axes' labels name the channels (``marker (channel)``), the
population's region is the patch ``region:<population>`` (``region-outside:<population>`` for a
``not`` gate) in data coordinates, and the parent named by the template gives the events
(``result.events(parent)``, the values the gates saw). Membership recomputed from the drawn path
must equal ``result.membership(population)`` event for event. Run on simulated files of both study
panels and on real files of every source in ../shared/data/real (tests/real_references.py).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import cytophen

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::cytophen.errors.FCSWarning")


def _channel(label: str, columns: dict[str, str]) -> str:
    """The events column an axis label ``marker (channel)`` (or a bare name) stands for."""
    m = re.fullmatch(r"(.*) \((.*)\)", label)
    names = [m.group(2), m.group(1)] if m else [label]
    by_channel = {ch: col for col, ch in columns.items()}
    for n in names:
        if n in by_channel:
            return by_channel[n]
        if n in columns:
            return n
    raise AssertionError(f"axis label {label!r} names no channel of {sorted(by_channel)}")


def _on_boundary(pts: np.ndarray, verts: np.ndarray, tol: float) -> np.ndarray:
    """Whether each point lies on the closed polygon ``verts`` (within ``tol``)."""
    a, b = verts, np.roll(verts, -1, axis=0)
    d = b - a
    t = np.clip(np.einsum("nij,ij->ni", pts[:, None, :] - a[None], d) / np.maximum(
        np.einsum("ij,ij->i", d, d), 1e-300), 0.0, 1.0)  # fmt: skip
    near = a[None] + t[..., None] * d[None]
    return np.min(np.linalg.norm(pts[:, None, :] - near, axis=2), axis=1) <= tol


def drawn_members(result, population: str):
    """Membership of ``population`` recomputed from its plot: ``(mask, on_edge, figure)``;
    ``on_edge`` marks events lying exactly on the drawn boundary, where the gate's own convention
    (GatingML: rectangles ``min <= x < max``, polygons by their even-odd rule) decides and a
    point-in-path test may not."""
    fig = result.plot(population)
    ax = fig.axes[0]
    patches = [p for p in ax.patches if p.get_gid() in
               (f"region:{population}", f"region-outside:{population}")]  # fmt: skip
    assert len(patches) == 1, f"{population}: {len(patches)} region patches"
    patch = patches[0]
    parent = result.template.population(population).parent
    df = result.events(parent)
    cols = df.attrs["channels"]
    x = df[_channel(ax.get_xlabel(), cols)].to_numpy()
    if ax.get_ylabel() == "events":  # a histogram: the region is an interval of x
        a = patch.get_x()
        b = a + patch.get_width()
        inside = (x >= a) & (x < b)
        edge = (x == a) | (x == b)
    else:
        y = df[_channel(ax.get_ylabel(), cols)].to_numpy()
        path = patch.get_path().transformed(patch.get_patch_transform())
        pts = np.column_stack([x, y])
        inside = path.contains_points(pts)
        span = np.ptp(path.vertices, axis=0).max()
        edge = np.zeros(len(pts), dtype=bool)
        ok = np.isfinite(pts).all(axis=1)
        edge[ok] = _on_boundary(pts[ok], path.vertices[:-1], 1e-12 * max(span, 1.0))
    if patch.get_gid().startswith("region-outside:"):
        inside = ~inside
    inside &= np.isfinite(x)
    rows = df.index.to_numpy()
    mask = np.zeros(result.n_events, dtype=bool)
    mask[rows[inside]] = True
    on_edge = np.zeros(result.n_events, dtype=bool)
    on_edge[rows[edge]] = True
    return mask, on_edge, fig


def check_every_population(result) -> list[str]:
    """Assert the drawn region of every reported population; returns those drawn."""
    drawn = []
    tab = result.table.set_index("population")
    for pop in tab.index:
        entry = result.gates.get(pop) or {}
        if entry.get("skipped") or entry.get("pregated") or not bool(tab.loc[pop, "measured"]):
            fig = result.plot(pop)  # a figure saying why, never an error or an empty axis
            text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
            assert pop in text and (
                "skipped" in text or "pregated" in text or "not measured" in text
            )
            continue
        mask, on_edge, fig = drawn_members(result, pop)
        expected = result.membership(pop)
        diff = np.flatnonzero((mask != expected) & ~on_edge)
        assert on_edge.sum() <= 5 + 1e-4 * expected.size, f"{pop}: {on_edge.sum()} on the edge"
        assert not diff.size, (
            f"{result.sample_id} {pop}: the drawn gate holds {int(mask.sum())} events, the "
            f"population {int(expected.sum())} ({diff.size} differ)"
        )
        # the label sits inside the region it names
        ax = fig.axes[0]
        label = next(t for t in ax.texts if t.get_gid() == "gate-label"
                     and t.get_text().split("\n")[0].split(" ")[0] == pop)  # fmt: skip
        region = next(p for p in ax.patches if (p.get_gid() or "").endswith(f":{pop}"))
        lx, ly = label.get_position()
        if ax.get_ylabel() == "events":
            ok = region.get_x() <= lx < region.get_x() + region.get_width()
        else:
            path = region.get_path().transformed(region.get_patch_transform())
            ok = bool(path.contains_point((lx, ly)))
        if region.get_gid().startswith("region-outside:"):
            ok = not ok
        assert ok, f"{result.sample_id} {pop}: label at ({lx:.3g}, {ly:.3g}) is outside its gate"
        drawn.append(pop)
    return drawn


# --------------------------------------------------------------------------------------------
# simulated files of both study panels
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("panel", ["bcell", "treg"])
def test_every_population_of_a_simulated_file_is_its_drawn_gate(panel, tmp_path):
    from cytophen.simulate import simulate_file

    path = simulate_file(tmp_path / f"{panel}.fcs", panel, seed=3, events=30_000)
    result = cytophen.gate(cytophen.read_fcs(path), cytophen.load_template(panel))
    drawn = check_every_population(result)
    reported = list(result.table["population"])
    # the simulator has every marker of its panel: every reported population is drawn, but for
    # a clean-up step on a channel the panel lacks (the Treg panel has no CD19 dump channel)
    assert drawn == [p for p in reported if p not in result.skipped]
    if panel == "bcell":
        assert {"naive", "switched_memory", "dn", "dn1", "dn2", "transitional"} <= set(drawn)
    else:
        assert {"cd4", "treg", "helios_pos_treg", "helios_neg_treg"} <= set(drawn)


# --------------------------------------------------------------------------------------------
# real files: one of each source and template
# --------------------------------------------------------------------------------------------
def _cases():
    from real_references import CASES

    wanted = (
        "flowatlas/390C_BM_027/treg", "flowatlas/423_Donor_Lung_032/treg",
        "flowatlas/390C_BM_027/tcell", "flowdensity/sampleFCS_1/bcell",
        "flowdensity/sampleFCS_2/bcell", "flowai/Bcells1/bcell", "hipc/tcell",
        "lyoplate_dc/001/tcell", "itn/01/tcell", "omip021/Donor1/tcell",
    )  # fmt: skip
    by_id = {c.id: c for c in CASES}
    return [by_id[w] for w in wanted]


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.id)
def test_every_population_of_a_real_file_is_its_drawn_gate(case):
    from conftest import shared_path
    from real_references import gate_case

    shared_path("real", case.file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gate_case(case)
    drawn = check_every_population(result)
    assert set(case.measured) - set(case.skipped) <= set(drawn) | {case.pregated}
    assert not set(case.not_measured) & set(drawn)
