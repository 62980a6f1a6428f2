"""Data-driven gates: small estimators registered by name, fitted on each sample's parent events.

Each method is a scikit-learn-style estimator (``__init__`` stores typed parameters, ``fit(X)``
learns on the parent's events in transformed space and returns ``self``, learned values end in
``_``: ``threshold_``, ``vertices_``, ``fell_back_``, ``reason_``). Templates name them:

============== ========================================================================
name           what it places
============== ========================================================================
mindensity     1-D cut at the deepest KDE valley between the two highest peaks (openCyto)
valley         1-D cut at the most prominent KDE valley, spread rule without one (cytophen)
tailgate       1-D cut where the density flattens beyond a reference peak
quantile       1-D cut at a quantile
peak_offset    1-D cut at a found peak + offset ("CD38hi = above the 2nd mode")
mixture_1d     1-D cut between mixture components (t or Gaussian)
spread         1-D cut k robust SDs beyond the main population (positives as a tail)
mixture_ellipse ellipse of the mixture component nearest a target
transitional   openCyto's transitional polygon (CD24hi CD38hi, CD25+ CD127lo)
anchored_transitional  small hi-hi cloud beyond a robust main one: line at the posterior
                       (more dims: as many events, ranked on all of them)
mixture_halfspace  side of a Fisher hyperplane between two t components started from a 1-D cut
singlet        FSC-A/FSC-H robust regression band (polygon)
scatter_cloud  the lymphocyte cloud on FSC x SSC, to the density valleys around it (polygon)
corner_cloud   a cloud in one corner of a 2-D view, to its valleys (polygon; else a box)
boundary       rectangle removing saturated / off-scale events
quadrant       four named rectangles from two 1-D cuts (optionally sequential)
box            a box from one 1-D cut per dimension (optionally sequential)
guided_box     a box on two markers placed where a third (the guide) finds its positive cells
============== ========================================================================

Contract used by the engine::

    fit_gate(gate: DataDrivenGate, values: (n_parent, d) float64, *, seed: int) -> FitOutcome

See docs/methods.md for the maths, fallbacks and minimum event counts.
"""

from __future__ import annotations

from cytophen.datadriven._anchored import AnchoredTransitional
from cytophen.datadriven._api import DEFAULT_MAX_FIT_EVENTS, build_estimator, fit_gate
from cytophen.datadriven._base import CutEstimator, FitDeclined, GateEstimator
from cytophen.datadriven._cuts import MinDensity, Spread, Valley
from cytophen.datadriven._halfspace import MixtureHalfspace
from cytophen.datadriven._kde import density
from cytophen.datadriven._peak_cuts import Mixture1D, PeakOffset, QuantileGate, TailGate
from cytophen.datadriven._quadrant import (
    BoxEstimator,
    GuidedBox,
    PairEstimator,
    QuadrantEstimator,
)
from cytophen.datadriven._regions import BoundaryGate, MixtureEllipse, SingletGate, Transitional
from cytophen.datadriven._registry import available_methods, check_params, get_method, register
from cytophen.datadriven._scatter import CornerCloud, ScatterCloud

for _cls in (
    MinDensity,
    Valley,
    TailGate,
    QuantileGate,
    PeakOffset,
    Mixture1D,
    Spread,
    MixtureEllipse,
    Transitional,
    AnchoredTransitional,
    SingletGate,
    BoundaryGate,
    QuadrantEstimator,
    BoxEstimator,
    MixtureHalfspace,
    ScatterCloud,
    GuidedBox,
    CornerCloud,
):
    register(_cls)
del _cls

__all__ = [
    "fit_gate",
    "build_estimator",
    "available_methods",
    "check_params",
    "get_method",
    "register",
    "density",
    "DEFAULT_MAX_FIT_EVENTS",
    "GateEstimator",
    "CutEstimator",
    "FitDeclined",
    "MinDensity",
    "Valley",
    "TailGate",
    "QuantileGate",
    "PeakOffset",
    "Mixture1D",
    "Spread",
    "MixtureEllipse",
    "Transitional",
    "AnchoredTransitional",
    "MixtureHalfspace",
    "SingletGate",
    "BoundaryGate",
    "QuadrantEstimator",
    "BoxEstimator",
    "PairEstimator",
    "ScatterCloud",
    "GuidedBox",
    "CornerCloud",
]
