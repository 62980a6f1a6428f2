"""Data-driven gates: small estimators registered by name, fitted on each sample's parent events.

Each method is a scikit-learn-style estimator (``__init__`` stores typed parameters, ``fit(X)``
learns on the parent's events in transformed space and returns ``self``, learned values end in
``_``: ``threshold_``, ``vertices_``, ``fell_back_``, ``reason_``). Templates name them:

============== ========================================================================
name           what it places
============== ========================================================================
mindensity     1-D cut at the deepest KDE valley between the two highest peaks
tailgate       1-D cut where the density flattens beyond a reference peak
quantile       1-D cut at a quantile
peak_offset    1-D cut at a found peak + offset ("CD38hi = above the 2nd mode")
mixture_1d     1-D cut between mixture components (t or Gaussian)
mixture_ellipse ellipse of the mixture component nearest a target
transitional   openCyto's transitional polygon (CD24hi CD38hi, CD25+ CD127lo)
anchored_transitional  small hi-hi cloud beyond a robust main one: line at the posterior
                       (more dims: as many events, ranked on all of them)
mixture_halfspace  side of a Fisher hyperplane between two t components started from a 1-D cut
singlet        FSC-A/FSC-H robust regression band (polygon)
boundary       rectangle removing saturated / off-scale events
quadrant       four named rectangles from two 1-D cuts (optionally sequential)
box            a box from one 1-D cut per dimension (optionally sequential)
============== ========================================================================

Contract used by the engine::

    fit_gate(gate: DataDrivenGate, values: (n_parent, d) float64, *, seed: int) -> FitOutcome

See docs/methods.md for the maths, fallbacks and minimum event counts.
"""

from __future__ import annotations

from cytophen.datadriven._anchored import AnchoredTransitional
from cytophen.datadriven._api import DEFAULT_MAX_FIT_EVENTS, build_estimator, fit_gate
from cytophen.datadriven._base import CutEstimator, FitDeclined, GateEstimator
from cytophen.datadriven._cuts import MinDensity, Mixture1D, PeakOffset, QuantileGate, TailGate
from cytophen.datadriven._halfspace import MixtureHalfspace
from cytophen.datadriven._kde import density
from cytophen.datadriven._quadrant import BoxEstimator, PairEstimator, QuadrantEstimator
from cytophen.datadriven._regions import BoundaryGate, MixtureEllipse, SingletGate, Transitional
from cytophen.datadriven._registry import available_methods, check_params, get_method, register

for _cls in (
    MinDensity,
    TailGate,
    QuantileGate,
    PeakOffset,
    Mixture1D,
    MixtureEllipse,
    Transitional,
    AnchoredTransitional,
    SingletGate,
    BoundaryGate,
    QuadrantEstimator,
    BoxEstimator,
    MixtureHalfspace,
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
    "TailGate",
    "QuantileGate",
    "PeakOffset",
    "Mixture1D",
    "MixtureEllipse",
    "Transitional",
    "AnchoredTransitional",
    "MixtureHalfspace",
    "SingletGate",
    "BoundaryGate",
    "QuadrantEstimator",
    "BoxEstimator",
    "PairEstimator",
]
