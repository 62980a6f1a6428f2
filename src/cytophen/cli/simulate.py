"""``cytophen simulate`` (simulated FCS files with ground truth) and ``cytophen score`` (gate
simulated files with a template and score every population against the truth).

Exit codes: 0 ok; 1 (score) some files could not be gated or scored (listed); 2 bad invocation.
"""

from __future__ import annotations

from pathlib import Path

import click

from cytophen.cli._common import Invalid as _Invalid
from cytophen.cli._common import (
    check_out_dir,
    check_out_file,
    out_option,
    quiet_option,
    repairs_option,
)

__all__ = ["simulate", "score"]


@click.command(name="simulate")
@out_option(required=True, metavar="DIR", help="Output folder (created if needed).")
@click.option(
    "--cohort",
    type=click.Choice(["study"]),
    default=None,
    help="Write a whole cohort preset: 'study' = 6 subjects x 5 visits x both panels, "
    "with manifest.csv and clinical.csv.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed (same seed, same files)."
)
@click.option(
    "--events",
    type=click.IntRange(min=1),
    default=30_000,
    show_default=True,
    help="Events per file.",
)
@click.option(
    "--panel",
    type=click.Choice(["bcell", "treg", "both"]),
    default="both",
    show_default=True,
    help="Which panel(s) to write.",
)
@click.option(
    "--files",
    "n_files",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Without --cohort: files per panel (seeds SEED, SEED+1, ...).",
)
@click.option(
    "--drift",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Scale of file-to-file drift of population positions (0 = none).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes for writing a cohort.",
)
@quiet_option
def simulate(out, cohort, seed, events, panel, n_files, drift, jobs, quiet):
    """Write simulated FCS 3.1 files, each with <stem>.truth.parquet (one boolean column per
    template population) beside it.

    \b
    Examples:
      cytophen simulate --out study --cohort study --events 30000
      cytophen simulate --out sim --panel bcell --files 5 --seed 1
    """
    from cytophen.errors import CytophenError

    panels = ("bcell", "treg") if panel == "both" else (panel,)
    out_dir = check_out_dir(out)
    echo = (lambda *a, **k: None) if quiet else click.echo
    try:
        if cohort == "study":
            from cytophen.simulate import simulate_cohort

            c = simulate_cohort(
                out_dir, seed=seed, events=events, drift=drift, panels=panels, jobs=jobs
            )
            echo(
                f"wrote {len(c.files)} FCS files (+ truth) for 6 subjects x 5 visits to "
                f"{out_dir}/, with manifest.csv, clinical.csv and design.csv"
            )
            return 0
        from cytophen.simulate import simulate_file

        n = 0
        for p in panels:
            for i in range(n_files):
                s = seed + i
                path = out_dir / f"sim_{p}_s{s}.fcs"
                simulate_file(path, p, seed=s, events=events, drift=drift)
                echo(f"wrote {path} (+ {path.stem}.truth.parquet)")
                n += 1
    except CytophenError as exc:
        raise _Invalid(str(exc)) from None
    return 0


def _expand(paths) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                sorted(
                    q for q in p.rglob("*.fcs") if q.with_name(q.stem + ".truth.parquet").exists()
                )
            )
        else:
            out.append(p)
    return out


@click.command(name="score")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "-t",
    "--template",
    "template_path",
    required=True,
    metavar="T",
    help="The template to gate with (a shipped one by name, e.g. bcell, or a file).",
)
@out_option(metavar="FILE.csv", help="Write the per-file, per-population scores here.")
@click.option(
    "--panel",
    default=None,
    metavar="NAME",
    help="Only files whose name contains NAME (default: the template's name when FILES "
    "include folders).",
)
@repairs_option
@quiet_option
def score(files, template_path, out, panel, repairs, quiet):
    """Gate simulated FCS files (or folders of them) with a template and score each population
    against the simulator's truth: F1, precision, recall of membership and the absolute error of
    percent of parent (percentage points). Prints the mean over files per population.

    \b
    Example:
      cytophen score --template bcell study/ --out scores.csv
    """
    import pandas as pd

    import cytophen
    from cytophen.errors import CytophenError
    from cytophen.simulate import read_truth
    from cytophen.simulate import score as _score

    if out is not None:
        check_out_file(out)
    try:
        template = cytophen.load_template(template_path)
    except CytophenError as exc:
        raise _Invalid(str(exc)) from None
    paths = _expand(files)
    any_dir = any(Path(f).is_dir() for f in files)
    key = panel if panel is not None else (template.name if any_dir else None)
    if key:
        paths = [p for p in paths if key in p.name]
    if not paths:
        raise _Invalid(
            f"no simulated FCS files (with a .truth.parquet) found in: {', '.join(files)}"
            + (f" matching {key!r}" if key else "")
        )
    tables, failed = [], []
    for p in paths:
        try:
            truth = read_truth(p)
            res = cytophen.gate(cytophen.read_fcs(p, repairs=repairs), template)
            t = _score(res, truth)
        except CytophenError as exc:
            failed.append((p, str(exc)))
            click.echo(f"failed: {p}: {exc}", err=True)
            continue
        t.insert(0, "sample", p.stem)
        tables.append(t)
    if not tables:
        raise click.ClickException("no file could be scored")
    allt = pd.concat(tables, ignore_index=True)
    if out:
        from cytophen._atomic import atomic_write_with

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_with(out, lambda tmp: allt.to_csv(tmp, index=False))
    if quiet:
        return 1 if failed else 0
    order = list(dict.fromkeys(allt["population"]))
    summ = (
        allt.groupby("population", sort=False)
        .agg(
            files=("sample", "nunique"),
            f1_mean=("f1", "mean"),
            f1_min=("f1", "min"),
            abs_error_pp_mean=("abs_error_pp", "mean"),
            abs_error_pp_max=("abs_error_pp", "max"),
        )
        .reindex(order)
    )
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        click.echo(summ.round(3).to_string())
    if out:
        click.echo(f"per-file scores: {out}")
    return 1 if failed else 0
