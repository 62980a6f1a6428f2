"""Transform classes vs FlowKit / flowutils, GatingML 2.0 truth (ScaleRange1-6 on data1.fcs),
inverses, serialisation and parameter validation."""

from __future__ import annotations

import json
import pickle
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import shared_path
from cytophen.errors import TransformError
from cytophen.kernels import gating as kg
from cytophen.transforms import (
    TRANSFORMS,
    AsinhTransform,
    FlowJoBiexTransform,
    FlowJoLogTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    Transform,
    transform_from_dict,
)

fkt = pytest.importorskip("flowkit._models.transforms._transforms")
fkw = pytest.importorskip("flowkit._models.transforms._wsp_transforms")


def values(T: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.uniform(-0.05 * T, 1.05 * T, 20_000),
            np.exp(rng.uniform(-10, np.log(50 * T), 5_000)) * rng.choice([-1, 1], 5_000),
            [0.0, 1.0, -1.0, T, -T, 2 * T, np.nan],
        ]
    )


def assert_matches(got, exp, rtol=1e-9):
    got, exp = np.asarray(got), np.asarray(exp)
    both_nan = np.isnan(got) & np.isnan(exp)
    same_inf = np.isinf(exp) & (got == exp)
    sel = ~(both_nan | same_inf)
    diff = np.abs(got[sel] - exp[sel])
    assert np.all(diff <= np.maximum(rtol * np.abs(exp[sel]), 1e-15)), (
        f"max rel diff {np.max(diff / np.maximum(np.abs(exp[sel]), 1e-300)):.3g}"
    )


PAIRS = [
    (LinearTransform(T=262144, A=0), fkt.LinearTransform(param_t=262144, param_a=0), 262144),
    (LinearTransform(T=10000, A=500), fkt.LinearTransform(param_t=10000, param_a=500), 10000),
    (LogTransform(T=262144, M=4.5), fkt.LogTransform(param_t=262144, param_m=4.5), 262144),
    (LogTransform(T=10000, M=5), fkt.LogTransform(param_t=10000, param_m=5), 10000),
    (
        AsinhTransform(T=262144, M=4.5, A=0),
        fkt.AsinhTransform(param_t=262144, param_m=4.5, param_a=0),
        262144,
    ),
    (
        AsinhTransform(T=10000, M=4, A=1),
        fkt.AsinhTransform(param_t=10000, param_m=4, param_a=1),
        10000,
    ),
    (
        LogicleTransform(T=262144, W=0.5, M=4.5, A=0),
        fkt.LogicleTransform(param_t=262144, param_w=0.5, param_m=4.5, param_a=0),
        262144,
    ),
    (
        LogicleTransform(T=10000, W=1, M=4, A=0.5),
        fkt.LogicleTransform(param_t=10000, param_w=1, param_m=4, param_a=0.5),
        10000,
    ),
    (
        HyperlogTransform(T=10000, W=1, M=4.5, A=0),
        fkt.HyperlogTransform(param_t=10000, param_w=1, param_m=4.5, param_a=0),
        10000,
    ),
    (
        FlowJoBiexTransform(negative=0, width=-10, positive=4.41854, max_value=262144.000029),
        fkw.WSPBiexTransform(negative=0, width=-10, positive=4.41854, max_value=262144.000029),
        262144,
    ),
    (
        FlowJoBiexTransform(negative=1, width=-100, positive=4.5, max_value=262144),
        fkw.WSPBiexTransform(negative=1, width=-100, positive=4.5, max_value=262144),
        262144,
    ),
    (
        FlowJoBiexTransform(negative=0.5, width=-31.6, positive=4.0, max_value=10000),
        fkw.WSPBiexTransform(negative=0.5, width=-31.6, positive=4.0, max_value=10000),
        10000,
    ),
    (FlowJoLogTransform(offset=1, decades=4.5), fkw.WSPLogTransform(offset=1, decades=4.5), 262144),
    (FlowJoLogTransform(offset=10, decades=5), fkw.WSPLogTransform(offset=10, decades=5), 262144),
]


@pytest.mark.parametrize(
    "ours,theirs,T", PAIRS, ids=[f"{p[0].kind}-{i}" for i, p in enumerate(PAIRS)]
)
def test_apply_and_inverse_match_flowkit(ours, theirs, T):
    x = values(T)
    with np.errstate(all="ignore"):
        exp = theirs.apply(x.copy())
    got = ours.apply(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    if isinstance(ours, (LogicleTransform, HyperlogTransform)):
        exp = np.where(
            np.isnan(x), np.nan, exp
        )  # flowutils returns -1 for NaN; we pass NaN through
    assert_matches(got, exp)
    assert np.isnan(got[np.isnan(x)]).all()
    if hasattr(theirs, "inverse"):
        y = np.linspace(np.nanmin(got[np.isfinite(got)]), np.nanmax(got[np.isfinite(got)]), 3001)
        with np.errstate(all="ignore"):
            assert_matches(ours.inverse(y), theirs.inverse(y.copy()))


@pytest.mark.parametrize(
    "ours,theirs,T", PAIRS, ids=[f"{p[0].kind}-{i}" for i, p in enumerate(PAIRS)]
)
def test_inverse_of_apply_is_identity(ours, theirs, T):
    x = values(T, seed=1)
    x = x[np.isfinite(x) & (np.abs(x) <= 10 * T)]
    if isinstance(ours, (LogTransform, FlowJoLogTransform)):
        x = x[x > getattr(ours, "offset", 0.0)]  # the log scales are only invertible there
    if isinstance(ours, FlowJoBiexTransform):
        # a 4097-point table with linear interpolation: exact at the nodes, and within the range
        xs, _ = ours._table()
        x = np.concatenate([xs, x[(x > xs[0]) & (x < xs[-1])]])
        np.testing.assert_allclose(ours.inverse(ours.apply(x)), x, rtol=1e-9, atol=1e-6 * T)
        return
    np.testing.assert_allclose(ours.inverse(ours.apply(x)), x, rtol=1e-9, atol=1e-9 * T)


def test_logicle_w0_is_asinh():
    """W = 0: the biexponential collapses to 2 a e^{b x1} sinh(b (y - x1)), i.e. fasinh."""
    x = values(262144.0)
    t = LogicleTransform(T=262144, W=0, M=4.5, A=1)
    M, A, T = 4.5, 1.0, 262144.0
    exp = (np.arcsinh(x * np.sinh(M * np.log(10)) / T) + A * np.log(10)) / ((M + A) * np.log(10))
    assert_matches(t.apply(x), exp)


def _scale_range_cases():
    kinds = {
        "fasinh": "asinh",
        "hyperlog": "hyperlog",
        "flin": "linear",
        "logicle": "logicle",
        "flog": "log",
    }
    return [
        ("gml_transform_asinh_range1_gate.xml", "ScaleRange1"),
        ("gml_transform_hyperlog_range2_gate.xml", "ScaleRange2"),
        ("gml_transform_linear_range3_gate.xml", "ScaleRange3"),
        ("gml_transform_logicle_range4_gate.xml", "ScaleRange4"),
        ("gml_transform_logicle_range5_gate.xml", "ScaleRange5"),
        ("gml_transform_log_range6_gate.xml", "ScaleRange6"),
    ], kinds


@pytest.mark.parametrize("xml_name,gate_id", _scale_range_cases()[0])
def test_gatingml_scale_ranges_match_truth(xml_name, gate_id):
    """GatingML 2.0 conformance: a range on a transformed channel reproduces the per-event truth."""
    import cytophen

    kinds = _scale_range_cases()[1]
    T_NS = "{http://www.isac-net.org/std/Gating-ML/v2.0/transformations}"
    G_NS = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
    D_NS = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}"
    root = ET.parse(shared_path("gatingml2", "gml", xml_name)).getroot()
    (spec,) = list(root.find(f"{T_NS}transformation"))
    kind = kinds[spec.tag.replace(T_NS, "")]
    params = {k.replace(T_NS, ""): float(v) for k, v in spec.attrib.items()}
    transform = transform_from_dict({"kind": kind, **params})
    dim = root.find(f"{G_NS}RectangleGate").find(f"{G_NS}dimension")
    channel = dim.find(f"{D_NS}fcs-dimension").get(f"{D_NS}name")
    lo, hi = float(dim.get(f"{G_NS}min")), float(dim.get(f"{G_NS}max"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = cytophen.read_fcs(shared_path("gatingml2", "data1.fcs"))
    v = transform.apply(s.linear_column(s.channels.index(channel)))[:, None]
    got = kg.points_in_rectangle(v, np.array([lo]), np.array([hi]), np.array([False]))
    truth = np.loadtxt(
        shared_path("gatingml2", "truth", f"Results_{gate_id}.txt"), dtype=np.int64
    ).astype(bool)
    np.testing.assert_array_equal(got, truth)


@pytest.mark.parametrize("ours", [p[0] for p in PAIRS] + [Transform()])
def test_to_dict_roundtrip(ours):
    d = ours.to_dict()
    assert d["kind"] == ours.kind and ours.kind in TRANSFORMS
    back = transform_from_dict(json.loads(json.dumps(d)))
    assert back == ours and type(back) is type(ours)
    again = pickle.loads(pickle.dumps(ours))
    x = np.array([-10.0, 0.0, 10.0, 1000.0])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(again.apply(x), ours.apply(x))
        np.testing.assert_array_equal(back.apply(x), ours.apply(x))


@pytest.mark.parametrize(
    "d,match",
    [
        ({"kind": "logicle", "T": 262144, "W": 3, "M": 4.5, "A": 0}, "W=3.0 is too large"),
        ({"kind": "logicle", "T": -1, "W": 0.5, "M": 4.5, "A": 0}, "T .* must be > 0"),
        ({"kind": "logicle", "T": 262144, "W": 0.5, "M": 4.5, "A": -1}, "A=-1.0 is out of range"),
        ({"kind": "logicle", "T": 262144, "W": -0.5, "M": 4.5, "A": 0}, "W .* must be >= 0"),
        ({"kind": "hyperlog", "T": 262144, "W": 0, "M": 4.5, "A": 0}, "W .* must be > 0"),
        ({"kind": "logicle", "T": "abc", "W": 0.5, "M": 4.5, "A": 0}, "T must be a number"),
        ({"kind": "logicle", "T": float("nan"), "W": 0.5, "M": 4.5, "A": 0}, "T must be finite"),
        ({"kind": "log", "T": 262144, "M": 0}, "T and M must be > 0"),
        ({"kind": "linear", "T": 100, "A": -100}, "T \\+ A must be > 0"),
        ({"kind": "asinh", "T": 262144, "M": 4.5, "A": -1}, "A must be in"),
        (
            {
                "kind": "flowjo_biex",
                "negative": 0,
                "width": 10,
                "positive": 4.5,
                "max_value": 262144,
            },
            "width must be negative",
        ),
        ({"kind": "flowjo_log", "offset": 0, "decades": 4}, "offset and decades must be > 0"),
        ({"kind": "logiclee", "T": 1}, "unknown transform kind 'logiclee'"),
        ({"kind": "logicle", "T": 262144, "w": 0.5}, "unknown parameter\\(s\\) w"),
        ({"T": 1}, "with a 'kind'"),
    ],
)
def test_invalid_parameters_raise_transform_error(d, match):
    with pytest.raises(TransformError, match=match):
        transform_from_dict(d)
