"""What a data-driven method's arguments may be, declared once per estimator and checked alike by
``check_params`` (templates, ``cytophen validate``) and at the start of ``fit``.

The expected messages are written by hand from the ranges docs/templates.md documents; the cut
points of the nested-spec test are hand calculations (R type-7 quantiles of 1..101).
"""

from __future__ import annotations

import numpy as np
import pytest

import cytophen.datadriven as dd
from cytophen.datadriven._registry import make_cut
from cytophen.errors import GateError
from cytophen.gates import DataDrivenGate

#: Every registered estimator class (aliases resolved).
CLASSES = sorted({dd.get_method(name) for name in dd.available_methods()}, key=lambda c: c.name)


def _events(cls, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(0)
    d = 1 if cls.n_dims == 1 else 2
    return np.r_[rng.normal(0.0, 1.0, (n, d)), rng.normal(5.0, 1.0, (n, d))]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_every_constructor_argument_has_a_constraint(cls):
    names = cls.param_names()
    assert "min_events" in names
    assert list(cls.parameter_constraints()) == names
    # no constraint left over for an argument the class does not take
    assert set(vars(cls).get("_parameter_constraints", {})) <= set(names)
    # the minimum is an argument, never a class constant an instance overwrites
    assert all("min_events" not in vars(k) for k in cls.__mro__)
    assert cls().min_events is None


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_defaults_are_valid(cls):
    assert dd.check_params(cls.name, {}) == []
    assert cls.param_problems(cls().get_params()) == []


class _Bad:
    def __repr__(self) -> str:
        return "<bad>"


@pytest.mark.parametrize(
    "cls,name",
    [(cls, name) for cls in CLASSES for name in cls.param_names()],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_a_value_of_no_allowed_kind_is_named_by_check_params_and_by_fit(cls, name):
    (msg,) = dd.check_params(cls.name, {name: _Bad()})
    assert msg.startswith(f"argument {name!r} of {cls.name} must be ")
    assert msg.endswith("got _Bad <bad>")
    est = cls()
    setattr(est, name, _Bad())
    with pytest.raises(GateError) as err:
        est.fit(_events(cls))
    assert err.value.problem == msg


# (method, arguments, the one expected message)
BAD = [
    ("mindensity", {"min_depth": 1.5},
     "argument 'min_depth' of mindensity must be a number within [0, 1), got float 1.5"),
    ("mindensity", {"gate_range": [1, 2, 3]},
     "argument 'gate_range' of mindensity must be a list of 2 numbers (the first below the "
     "second) or null, got list [1, 2, 3]"),
    ("mindensity", {"gate_range": [0.6, 0.2]},
     "argument 'gate_range' of mindensity must be a list of 2 numbers (the first below the "
     "second) or null, got list [0.6, 0.2]"),
    ("mindensity", {"unimodal": "upper"},
     "argument 'unimodal' of mindensity must be one of 'upper_tail', 'lower_tail', "
     "'range_low', 'range_high', 'upper_spread', 'lower_spread', 'skew_spread', got str "
     "'upper'"),
    ("mindensity", {"adjust": 0},
     "argument 'adjust' of mindensity must be a number > 0, got int 0"),
    ("mindensity", {"min": 2, "max": 1},
     "arguments 'min' and 'max' of mindensity: min must be below max, got min=2, max=1"),
    ("mindensity", {"min_events": 0},
     "argument 'min_events' of mindensity must be an integer >= 1 or null, got int 0"),
    ("mindensity", {"max_fit_events": 0.5},
     "argument 'max_fit_events' of mindensity must be an integer >= 1, got float 0.5"),
    ("mindensity", {"sequential": "yes"},
     "argument 'sequential' of mindensity must be true or false, got str 'yes'"),
    ("tailgate", {"num_peaks": 0},
     "argument 'num_peaks' of tailgate must be an integer >= 1, got int 0"),
    ("tailgate", {"bias": float("nan")},
     "argument 'bias' of tailgate must be a number, got float nan"),
    ("quantile", {"probs": 1.5},
     "argument 'probs' of quantile must be a number within [0, 1], got float 1.5"),
    ("peak_offset", {"peak": 0},
     "argument 'peak' of peak_offset must be an integer >= 1 or an integer <= -1, got int 0"),
    ("mixture_1d", {"K": 3, "neg": 3},
     "arguments 'neg' and 'K' of mixture_1d: neg must be below K, got neg=3, K=3"),
    ("flowclust", {"K": 2.5},
     "argument 'K' of mixture_ellipse must be an integer >= 1, got float 2.5"),
    ("mixture_ellipse", {"n_init": True},
     "argument 'n_init' of mixture_ellipse must be an integer >= 1, got bool True"),
    ("anchored_transitional", {"direction": [0, 0]},
     "argument 'direction' of anchored_transitional must be a list of 2 numbers (not both 0) "
     "or null, got list [0, 0]"),
    ("boundary", {"max": [262144, "x"]},
     "argument 'max' of boundary must be a list of (numbers or nulls) or null, "
     "got list [262144, 'x']"),
    ("singlet", {"quadrants": {"a": "++"}},
     "unknown argument 'quadrants' for singlet; it takes: prediction_level, maxit, wider_gate, "
     "extend, psi, start, min_events, max_fit_events"),
    ("quadrant", {"x": {"method": "mindensity", "min_depth": 1.5}},
     "x: argument 'min_depth' of mindensity must be a number within [0, 1), got float 1.5"),
    ("quadrant", {"y": {"method": "singlet"}}, "y: singlet does not find a 1-D cut point"),
    ("quadrant", {"quadrants": {"naive": "+x"}},
     "argument 'quadrants' of quadrant must be a mapping from names to one of '++', '+-', "
     "'-+', '--' or null, got dict {'naive': '+x'}"),
    ("quadrant", {"x": "mindensity"},
     "argument 'x' of quadrant must be a 1-D method {method: <name>, <its arguments>} or "
     "null, got str 'mindensity'"),
    ("box", {"axes": [{}, {"method": "tailgate", "side": "up"}]},
     "axes[1]: argument 'side' of tailgate must be one of 'right', 'left', got str 'up'"),
    ("box", {"side": "+-", "axes": [{}]},
     "arguments 'side' and 'axes' of box: one entry of axes per sign of side, "
     "got side='+-', axes=[{}]"),
    ("box", {"side": "+x"},
     "argument 'side' of box must be a text of '+' and '-' signs (one per dimension) or null, "
     "got str '+x'"),
    ("guided_box", {"guide": {"method": "spread", "k": 0}},
     "guide: argument 'k' of spread must be a number > 0, got int 0"),
    ("mixture_halfspace", {"cut": {"gate_range": [0.5]}},
     "cut: argument 'gate_range' of mindensity must be a list of 2 numbers (the first below "
     "the second) or null, got list [0.5]"),
]  # fmt: skip


@pytest.mark.parametrize("method,params,expected", BAD, ids=[f"{m}-{k}" for m, k, _ in BAD])
def test_check_params_names_the_argument_what_it_must_be_and_what_it_is(method, params, expected):
    assert dd.check_params(method, params) == [expected]


def test_every_problem_is_reported_at_once():
    # an out-of-range min_depth and a gate_range of three values: both reported, in one call
    assert len(dd.check_params("mindensity", {"min_depth": 1.5, "gate_range": [1, 2, 3]})) == 2
    msgs = dd.check_params(
        "quadrant",
        {"x": {"method": "mindensty"}, "y": {"method": "tailgate", "tol": -1}, "first": "z"},
    )
    assert len(msgs) == 3
    assert msgs[0].startswith(
        "x: unknown data-driven method 'mindensty'; did you mean 'mindensity'?"
    )
    assert msgs[1] == "y: argument 'tol' of tailgate must be a number within [0, 1), got int -1"
    assert msgs[2] == "argument 'first' of quadrant must be one of 'auto', 'x', 'y', got str 'z'"


def test_a_nested_spec_takes_the_methods_own_arguments_only():
    # max_fit_events and the quadrant keys belong to the gate, not to one of its axes
    (msg,) = dd.check_params("box", {"axes": [{"max_fit_events": 10}]})
    assert msg.startswith("axes[0]: unknown argument 'max_fit_events' for mindensity")
    assert dd.check_params("box", {"axes": [{"min_events": 10}]}) == []


@pytest.mark.parametrize(
    "make,word",
    [
        (lambda: dd.MinDensity(gate_range=[1, 2, 3]), "'gate_range'"),
        (lambda: dd.QuantileGate(probs=-0.1), "'probs'"),
        (lambda: dd.QuadrantEstimator(x={"method": "mindensity", "min_depth": 1.5}), "x: "),
        (lambda: dd.BoxEstimator(side="++", axes=[{}, {"method": "nope"}]), "axes[1]: "),
        (lambda: dd.MixtureHalfspace(cut={"method": "quantile", "probs": 2}), "cut: "),
    ],
)
def test_fit_refuses_bad_values_before_fitting(make, word):
    est = make()
    X = np.random.default_rng(1).normal(size=(500, 1 if est.n_dims == 1 else 2))
    with pytest.raises(GateError, match=word.replace("[", r"\[")):
        est.fit(X)
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(est))


def test_values_changed_after_construction_are_checked_by_fit():
    est = dd.MinDensity()
    est.min_depth = 1.5
    with pytest.raises(GateError, match="'min_depth' of mindensity must be a number within"):
        est.fit(np.random.default_rng(2).normal(size=500))


def test_nested_specs_are_built_by_make_cut_with_their_arguments():
    est = make_cut({"method": "tailgate", "side": "left", "min_events": 10}, 3)
    assert isinstance(est, dd.TailGate) and est.side == "left" and est.required_events() == 10
    assert isinstance(make_cut(None), dd.MinDensity)
    assert make_cut({"method": "mixture_1d"}, 7).random_state == 7
    assert make_cut({"method": "mixture_1d", "random_state": 1}, 7).random_state == 1
    with pytest.raises(GateError, match="singlet does not find a 1-D cut point"):
        make_cut({"method": "singlet"})
    # quantiles of 1..101 (R type 7): 0.5 -> 51, 0.25 -> 26, 0.9 -> 91
    v = np.arange(1.0, 102.0)
    X = np.c_[v, v]
    q = dd.QuadrantEstimator(
        x={"method": "quantile", "probs": 0.5}, y={"method": "quantile", "probs": 0.25}
    ).fit(X)
    assert (q.x_cut_, q.y_cut_) == (51.0, 26.0)
    box = dd.BoxEstimator(
        side="+-", axes=[{"method": "quantile", "probs": 0.9}, {"method": "quantile", "probs": 0.5}]
    )
    assert box.fit(X).cuts_ == [91.0, 51.0]


def test_min_events_is_an_argument_with_each_methods_own_default():
    assert dd.MinDensity().required_events() == 50
    assert dd.MinDensity(min_events=10).required_events() == 10
    assert dd.QuantileGate().required_events() == 20
    assert dd.BoundaryGate().required_events() == 1
    assert dd.ScatterCloud().required_events() == 200
    assert dd.MixtureEllipse(K=4).required_events() == 100  # 25 per component
    assert dd.MixtureEllipse(K=4, min_events=30).required_events() == 30
    quad = dd.QuadrantEstimator(x={"method": "mixture_1d", "K": 3})
    assert quad.required_events() == 75  # the axes' largest minimum
    assert (
        dd.QuadrantEstimator(x={"method": "mixture_1d", "K": 3}, min_events=10).required_events()
        == 10
    )
    # from a template: the gate's min_events goes to the estimator, the class keeps its default
    g = DataDrivenGate(["a", "b"], "mindensity", {"min_events": 12}, side="+-")
    est, need, cap = dd.build_estimator(g)
    assert isinstance(est, dd.BoxEstimator) and est.min_events == 12 and need == 12
    assert est.get_params()["min_events"] == 12 and dd.BoxEstimator.default_min_events == 50


def test_guided_box_takes_its_signs_from_the_gate_like_box():
    est, need, _ = dd.build_estimator(DataDrivenGate(["CD25", "CD127"], "guided_box", side="+-"))
    assert isinstance(est, dd.GuidedBox) and est.side == "+-" and need == 50
    with pytest.raises(GateError, match="signs come from the gate's side"):
        dd.build_estimator(
            DataDrivenGate(["CD25", "CD127"], "guided_box", {"side": "++"}, side="+-")
        )


# -- the method tables of the docs follow the estimators -------------------------------------

_DOCS = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs"
#: Arguments every estimator has, documented once above the table rather than in each row.
_COMMON = {"side", "random_state", "min_events", "quadrants"}


def _table_row(text: str, name: str) -> str | None:
    """The row of a markdown method table whose first cell starts with ```name```."""
    for line in text.splitlines():
        if line.startswith(f"| `{name}`"):
            return line
    return None


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_every_method_is_documented_with_its_arguments_and_defaults(cls):
    import inspect
    import re

    templates = (_DOCS / "templates.md").read_text(encoding="utf-8")
    templates = templates[templates.index("### Data-driven gates") :]
    methods = (_DOCS / "methods.md").read_text(encoding="utf-8")
    assert _table_row(methods, cls.name), f"docs/methods.md has no table row for {cls.name}"
    row = _table_row(templates, cls.name)
    assert row, f"docs/templates.md has no table row for {cls.name}"
    params = inspect.signature(cls.__init__).parameters
    args = [p for p in params if p != "self" and p not in _COMMON]
    inherited = re.search(r"as `(\w+)`", row)  # "as `mindensity`, with ..." documents the rest
    base = _table_row(templates, inherited.group(1)) if inherited else ""
    missing = [a for a in args if f"`{a}`" not in row and f"`{a}`" not in (base or "")]
    assert not missing, f"docs/templates.md row of {cls.name} does not name {missing}"
    # a number documented as a default ('`k` [3.0]') is the constructor's default
    for arg, shown in re.findall(r"`(\w+)` \[(-?[0-9.e-]+)\]", row):
        if arg in params and isinstance(params[arg].default, (int, float)):
            assert float(shown) == params[arg].default, (
                f"docs/templates.md: {cls.name} {arg} default shown as {shown}, "
                f"the estimator's is {params[arg].default}"
            )
