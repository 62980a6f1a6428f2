"""Population tables beside each subject's visits and disease activity.

- :func:`read_manifest`, :func:`manifest_from_pattern`, :func:`manifest_from_keywords`: map samples to
  subject and visit;
- :func:`merge`: one tidy table of populations × clinical columns, with every mismatch reported;
- :func:`changes`, :func:`paired_tests`, :func:`group_tests`, :func:`correlations`,
  :func:`analyse`: with the subject as the unit, change from baseline, Wilcoxon signed-rank
  against baseline, exact Mann-Whitney between groups, Spearman at one visit and repeated-measures
  correlation with the outcome's change, Benjamini-Hochberg over the reported populations;
- :mod:`cytophen.clinical.plots`: per-subject lines, change-vs-outcome scatters, correlation heatmap,
  each statistic with its n.
"""

from cytophen.clinical.manifest import (
    manifest_from_keywords,
    manifest_from_pattern,
    parse_visit,
    read_manifest,
)
from cytophen.clinical.merge import MergeResult, merge, read_clinical
from cytophen.clinical.stats import (
    StatsResult,
    analyse,
    changes,
    common_visit,
    correlations,
    group_tests,
    paired_tests,
)

__all__ = [
    "read_manifest",
    "manifest_from_pattern",
    "manifest_from_keywords",
    "parse_visit",
    "read_clinical",
    "merge",
    "MergeResult",
    "changes",
    "paired_tests",
    "group_tests",
    "correlations",
    "common_visit",
    "analyse",
    "StatsResult",
]
