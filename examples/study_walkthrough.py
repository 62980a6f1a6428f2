"""The lupus UC-MSC study, end to end from Python, on simulated data with known answers.

Run it as a script (``.venv/bin/python examples/study_walkthrough.py [OUT_DIR]``) or cell by cell
in VS Code / Jupyter (the ``# %%`` markers). Everything goes into ``OUT_DIR`` (default
``walkthrough/``); a few minutes with 20 000 events per file (60 files).
"""

# %% [markdown]
# ## 1. A cohort with ground truth
# Six subjects, visits W0-W20, a B-cell and a Treg tube per visit. Five responders lose DN,
# switched-memory and activated-naive B cells and gain transitional B cells; two of them gain
# Helios+ Tregs. Each FCS file has a ``.truth.parquet`` beside it saying which population every
# event really belongs to.

# %%
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # remove this line in a notebook to see the figures inline

import cytophen  # noqa: E402
from cytophen.clinical import analyse, merge  # noqa: E402
from cytophen.simulate import read_truth, score, simulate_cohort  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = (
    Path(sys.argv[1])
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
    else Path("walkthrough")
)
TEMPLATES = ROOT / "gating_templates"

cohort = simulate_cohort(OUT / "data", seed=0, events=20_000, jobs=2)
print(cohort.manifest.head())
print(cohort.clinical.head(10))

# %% [markdown]
# ## 2. One sample: read, gate, look
# ``read_fcs`` gives the stored (uncompensated) events, channel ($PnN) and marker ($PnS) names and
# the $SPILLOVER matrix; ``gate`` compensates, transforms and applies the template's gate tree.

# %%
first = OUT / "data" / "P01_W00_bcell.fcs"
sample = cytophen.read_fcs(first)
print(sample, list(zip(sample.channels, sample.markers)))

bcell = cytophen.load_template(TEMPLATES / "bcell.yaml")
result = cytophen.gate(sample, bcell)
print(result.table[["population", "parent", "count", "percent_of_parent"]].to_string(index=False))

fig = result.plot()  # every gate, in tree order, with the percentages
fig.savefig(OUT / "P01_W00_bcell_gates.png", dpi=80)

# %% [markdown]
# ## 3. How good is the gating? Score it against the truth
# F1 of the membership event by event, and the error of percent of parent in percentage points.

# %%
scores = score(result, read_truth(first))
print(
    scores[["population", "n_true", "n_gated", "f1", "abs_error_pp"]]
    .round(3)
    .to_string(index=False)
)

# %% [markdown]
# ## 4. The whole cohort, both panels
# ``jobs=2`` gates two files at a time (threads of this process, worker processes for a long
# batch); the workers never re-run this script, so it needs no ``if __name__ == "__main__":``
# guard. Each panel's results go to a folder of their own (one run per output folder).

# %%
tables = []
for panel in ("bcell", "treg"):
    files = sorted((OUT / "data").glob(f"*_{panel}.fcs"))
    batch = cytophen.gate_files(
        files, TEMPLATES / f"{panel}.yaml", jobs=2, out=OUT / "results" / panel, progress=False
    )
    print(f"{panel}: {batch.n_ok} samples gated, {batch.n_failed} failed")
    tables.append(batch.populations)

import pandas as pd  # noqa: E402

populations = pd.concat(tables, ignore_index=True)

# %% [markdown]
# ## 5. Merge with the manifest and clinical table; change from baseline vs SLEDAI

# %%
merged = merge(populations, cohort.clinical, cohort.manifest)
print(merged.summary())
table = merged.table
dn = table[table["population"] == "dn"].pivot_table(
    index="subject", columns="week", values="percent_of_parent"
)
print("DN B cells, % of non-plasmablast B cells:\n", dn.round(1))

stats = analyse(table, baseline="W0", outcome="SLEDAI", group="responder")
written = stats.write(OUT / "stats")
print(
    stats.correlations.sort_values("rho", ascending=False).head(8)
    if "rho" in stats.correlations
    else stats.correlations.head(8)
)
print(
    f"\nwrote {len(written)} files under {OUT / 'stats'}; gating plot: {OUT / 'P01_W00_bcell_gates.png'}"
)
