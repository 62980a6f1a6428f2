"""``fallback_from``: a data-driven gate whose fit falls back on a marker takes that marker's cut
from a population placed earlier on the same file (the T-cell template's CD4 and CD8 memory
quadrants take a CD45RA cut placed on all T cells when one lineage shows one CD45RA population).

Events are tight clusters with wide gaps, so each cut's place is known to the gap, and a cut taken
from the other population is equal to it exactly."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import cytophen
from cytophen.engine import fit_pooled
from cytophen.errors import TemplateError
from cytophen.interop.yaml_template import dump_template, load_yaml_template
from cytophen.io.sample import Sample

# lineage (L), marker with a valley only over all events (M), a second marker (N)
#   group  L    M    N    events
#   a_lo   100  10   10   1500   lineage A: M bimodal (10 / 50)
#   a_hi   100  50   10   1500
#   b_hi_n 10   50   10   1250   lineage B: every cell M+ (one M population), N bimodal
#   b_hi_N 10   50   50   1250
_GROUPS = {
    "a_lo": (100, 10, 10, 1500),
    "a_hi": (100, 50, 10, 1500),
    "b_hi_n": (10, 50, 10, 1250),
    "b_hi_N": (10, 50, 50, 1250),
}


def _sample(seed: int = 3) -> tuple[Sample, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for name, (lv, mv, nv, k) in _GROUPS.items():
        rows.append(np.column_stack([lv + rng.normal(0, 1, k), mv + rng.normal(0, 1.5, k),
                                     nv + rng.normal(0, 1.5, k)]))  # fmt: skip
        labels += [name] * k
    ev = np.vstack(rows).astype(np.float32)
    order = rng.permutation(ev.shape[0])
    lab = np.asarray(labels)[order]
    return Sample(ev[order], ["FL1-A", "FL2-A", "FL3-A"], ["L", "M", "N"]), {
        g: lab == g for g in _GROUPS
    }


HEAD = """\
name: fb
version: "1"
compensation: none
panel:
  L:
  M:
  N:
populations:
  m_all:                 # M cut over all events: a valley between 10 and 50
    hidden: true
    gate: {method: valley, dims: [M], side: "+"}
  a:
    gate: {kind: range, dims: [L], min: 50}
  b:
    gate: {kind: range, dims: [L], max: 50}
"""


def _template(tmp_path, body: str):
    p = tmp_path / "fb.yaml"
    p.write_text(HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n")
    return load_yaml_template(p)


BODY = """
a_m:
  parent: a
  gate: {method: valley, dims: [M], side: "+", fallback_from: m_all}
b_m:
  parent: b
  gate: {method: valley, dims: [M], side: "+", fallback_from: m_all}
b_quad:
  parent: b
  gate:
    method: quadrant
    dims: [M, N]
    args: {x: {method: valley}, y: {method: valley}}
    fallback_from: m_all
    quadrants: {b_mn: M+ N-, b_mN: M+ N+, b_neg_n: M- N-, b_neg_N: M- N+}
b_m_own:
  parent: b
  gate: {method: valley, dims: [M], side: "+"}
"""


def test_a_cut_that_fell_back_is_taken_from_the_named_population(tmp_path):
    s, g = _sample()
    r = cytophen.gate(s, _template(tmp_path, BODY), include_hidden=True)
    m_all = r.gates["m_all"]["geometry"]["min"][0]
    assert 15 < m_all < 45 and not r.gates["m_all"]["fell_back"]
    # lineage A has its own valley: kept, no fallback
    a_m = r.gates["a_m"]
    assert not a_m["fell_back"] and 15 < a_m["geometry"]["min"][0] < 45
    assert a_m["geometry"]["min"][0] != m_all
    np.testing.assert_array_equal(r.membership("a_m"), g["a_hi"])
    # lineage B: one M population; without fallback_from the cut falls above it (M- but for
    # a few of its brightest events) ...
    assert r.gates["b_m_own"]["fell_back"] and r.membership("b_m_own").sum() < 10
    # ... with it, the cut is m_all's, exactly, and still flagged
    b_m = r.gates["b_m"]
    assert b_m["fell_back"] and b_m["geometry"]["min"][0] == m_all
    assert b_m["reason"].endswith(f"M cut {m_all:.4g} from m_all")
    np.testing.assert_array_equal(r.membership("b_m"), g["b_hi_n"] | g["b_hi_N"])
    tab = r.table.set_index("population")
    assert "from m_all" in tab.loc["b_m", "note"] and tab.loc["a_m", "note"] == ""


def test_a_quadrant_takes_only_the_cut_that_fell_back(tmp_path):
    s, g = _sample()
    r = cytophen.gate(s, _template(tmp_path, BODY), include_hidden=True)
    m_all = r.gates["m_all"]["geometry"]["min"][0]
    q = r.gates["b_mN"]["geometry"]["quadrants"]["++"]
    assert q["min"][0] == m_all  # M: one population in B, the cut over all events
    assert 15 < q["min"][1] < 45 and q["min"][1] != m_all  # N: its own valley in B
    np.testing.assert_array_equal(r.membership("b_mN"), g["b_hi_N"])
    np.testing.assert_array_equal(r.membership("b_mn"), g["b_hi_n"])
    assert r.membership("b_neg_n").sum() == 0 and r.membership("b_neg_N").sum() == 0
    assert r.gates["b_mn"]["details"]["cuts_taken"] == [f"M cut {m_all:.4g} from m_all"]


def test_a_source_that_placed_nothing_leaves_the_own_fallback(tmp_path):
    s, _ = _sample()
    body = """
    m_none:                # declines: more events asked for than the file has
      gate: {method: valley, dims: [M], side: "+", args: {min_events: 100000}}
    b_m:
      parent: b
      gate: {method: valley, dims: [M], side: "+", fallback_from: m_none}
    """
    r = cytophen.gate(s, _template(tmp_path, body))
    tab = r.table.set_index("population")
    assert not tab.loc["m_none", "measured"]
    assert r.gates["b_m"]["fell_back"] and r.membership("b_m").sum() < 10
    assert "m_none placed no gate here: own fallback kept" in tab.loc["b_m", "note"]


def test_pooled_fits_take_the_cut_on_each_sample(tmp_path):
    """Gates fitted on two files pooled go through the same evaluator: on each file B's M cut is
    the pooled M cut over all events."""
    (s1, g1), (s2, _) = _sample(3), _sample(4)
    t = _template(tmp_path, BODY)
    fits = fit_pooled([s1, s2], t, seed=0)
    r = cytophen.gate(s1, t, fitted=fits, include_hidden=True)
    m_all = r.gates["m_all"]["geometry"]["min"][0]
    assert r.gates["b_m"]["geometry"]["min"][0] == m_all and r.gates["b_m"]["fell_back"]
    np.testing.assert_array_equal(r.membership("b_m"), g1["b_hi_n"] | g1["b_hi_N"])


def test_fallback_from_round_trips_through_yaml(tmp_path):
    t = _template(tmp_path, BODY)
    out = tmp_path / "again.yaml"
    dump_template(t, out)
    again = load_yaml_template(out)
    assert again.population("b_m").gate.fallback_from == "m_all"
    assert again.hash == t.hash


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("""
         b_m:
           parent: b
           gate: {method: valley, dims: [M], side: "+", fallback_from: m_al}
         """, "fallback_from population 'm_al' of 'b_m' is not a population of this template "
              "(did you mean 'm_all'?)"),
        ("""
         both:
           gate: {and: [a, b]}
         b_m:
           parent: b
           gate: {method: valley, dims: [M], side: "+", fallback_from: both}
         """, "fallback_from of 'b_m': 'both' is a boolean population; it must place a gate "
              "with cuts of its own"),
        ("""
         b_m:
           parent: b
           gate: {method: valley, dims: [N], side: "+", fallback_from: m_all}
         """, "fallback_from of 'b_m': the gate of 'm_all' is on M, none of N"),
        ("""
         b_m:
           parent: b
           gate: {method: valley, dims: [M], side: "+", fallback_from: [m_all]}
         """, "fallback_from of 'b_m' must name a population placed earlier"),
    ],
)  # fmt: skip
def test_bad_fallback_from_is_an_error_at_its_line(tmp_path, body, message):
    with pytest.raises(TemplateError) as exc:
        _template(tmp_path, body)
    problems = [p for p in exc.value.problems if message in str(p)]
    assert problems and problems[0].line is not None, str(exc.value)
