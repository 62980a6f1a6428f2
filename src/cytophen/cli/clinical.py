"""`cytophen merge` and `cytophen stats`."""

from __future__ import annotations

from pathlib import Path

import click

from cytophen._atomic import atomic_write_with
from cytophen.cli._common import Invalid, check_out_dir, check_out_file, out_option, quiet_option
from cytophen.errors import CytophenError


def _populations(path: Path):
    import pandas as pd

    if path.is_dir():
        for name in ("populations.parquet", "populations.csv"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise click.ClickException(
                f"{path}: no populations.csv or populations.parquet (run cytophen gate --out {path})"
            )
    if not path.exists():
        raise click.ClickException(f"{path}: not found")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


@click.command(name="merge")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--clinical",
    "clinical_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Clinical CSV: one row per subject x visit.",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    help="Sample manifest CSV (sample or file, subject, visit, ...).",
)
@click.option(
    "--pattern",
    help=r"Regex with named groups on file names instead of a manifest, e.g. '(?P<subject>P\d+)_(?P<visit>W\d+)'.",
)
@click.option("--subject-column", default="subject", show_default=True)
@click.option("--visit-column", default="visit", show_default=True)
@out_option(required=True, metavar="FILE.csv", help="Merged CSV to write (problems go beside it).")
@click.option("--strict", is_flag=True, help="Exit 1 when any sample or clinical row is unmatched.")
@quiet_option
def merge(results, clinical_path, manifest, pattern, subject_column, visit_column, out, strict,
          quiet):  # fmt: skip
    """Merge population tables (RESULTS folders or CSVs) with a manifest and a clinical table."""
    import pandas as pd

    from cytophen.clinical import manifest_from_pattern, read_clinical, read_manifest
    from cytophen.clinical import merge as _merge

    check_out_file(out)
    try:
        pops = pd.concat([_populations(p) for p in results], ignore_index=True)
        clin = read_clinical(clinical_path, subject=subject_column, visit=visit_column)
        man = None
        if manifest is not None:
            man = read_manifest(manifest)
        elif pattern:
            names = (
                pops.drop_duplicates("sample")["file"]
                if "file" in pops
                else pops["sample"].unique()
            )
            man = manifest_from_pattern([str(n) for n in names], pattern)
        res = _merge(pops, clin, man, subject=subject_column, visit=visit_column)
    except CytophenError as exc:
        raise Invalid(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out, lambda tmp: res.table.to_csv(tmp, index=False))
    prob_path = out.with_name(out.stem + "_problems.csv")
    atomic_write_with(prob_path, lambda tmp: res.problems.to_csv(tmp, index=False))
    if not quiet:
        n = res.table["sample"].nunique()
        click.echo(f"wrote {out} ({len(res.table)} rows, {n} samples)")
        click.echo(res.summary() + (f" (see {prob_path})" if not res.ok else ""))
    for m in res.problems["message"].head(20):
        click.echo(f"  {m}", err=True)
    return 1 if (strict and not res.ok) else 0


@click.command(name="stats")
@click.argument("merged", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--baseline", default="W0", show_default=True, help="Baseline visit label.")
@click.option(
    "--outcome",
    default="SLEDAI",
    show_default=True,
    help="Clinical column to correlate changes with ('' for none).",
)
@click.option(
    "--group",
    default=None,
    help="Column splitting subjects into groups (e.g. responder), compared with each other.",
)
@click.option(
    "--visit",
    "at_visit",
    default=None,
    help="Visit at which each subject's change is correlated with the outcome's change "
    "(default: the last visit every subject has).",
)
@click.option(
    "--value",
    default="percent_of_parent",
    show_default=True,
    help="Population column to analyse (e.g. percent_of_b_cells).",
)
@click.option("--subject-column", default="subject", show_default=True)
@click.option("--visit-column", default="visit", show_default=True)
@out_option(
    required=True,
    metavar="DIR",
    help="Folder for changes.csv, tests.csv, groups.csv, correlations.csv and plots/.",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@quiet_option
def stats(
    merged, baseline, outcome, group, at_visit, value, subject_column, visit_column, out, no_plots,
    quiet,
):  # fmt: skip
    """Change from baseline with the subject as the unit: Wilcoxon tests against baseline,
    Mann-Whitney between groups, Spearman at one visit and repeated-measures correlation with the
    outcome, Benjamini-Hochberg across populations (helper populations left out)."""
    import pandas as pd

    from cytophen.clinical import analyse

    check_out_dir(out)
    try:
        df = pd.read_csv(merged)
        res = analyse(
            df,
            baseline=baseline,
            outcome=outcome or None,
            group=group,
            at_visit=at_visit,
            value=value,
            subject=subject_column,
            visit=visit_column,
        )
        res.write(out, plots=not no_plots)
    except CytophenError as exc:
        raise Invalid(str(exc)) from None
    if quiet:
        for line in res.warnings():
            click.echo(f"warning: {line}", err=True)
        return 0
    n_subjects = res.changes["subject"].nunique()
    n_sig = int((res.tests["p_adj"] < 0.05).sum())
    parts = [
        f"wrote {out}/changes.csv ({len(res.changes)} rows, {n_subjects} subjects)",
        f"tests.csv ({len(res.tests)} tests, {n_sig} with p_adj < 0.05)",
    ]
    if res.groups is not None:
        parts.append(f"groups.csv ({int((res.groups['p_adj'] < 0.05).sum())} with p_adj < 0.05)")
    if res.correlations is not None:
        parts.append(
            f"correlations.csv (Spearman at {res.visit} and rmcorr, "
            f"{res.correlations['population'].nunique()} populations)"
        )
    click.echo(", ".join(parts))
    if res.helpers:
        click.echo(
            f"left out {len(res.helpers)} helper population(s): {', '.join(res.helpers)}", err=True
        )
    for line in res.warnings():
        click.echo(f"warning: {line}", err=True)
    return 0
