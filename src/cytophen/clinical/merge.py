"""Merging population tables with the sample manifest and the clinical table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cytophen.clinical.manifest import parse_visit
from cytophen.errors import ClinicalError

__all__ = ["read_clinical", "merge", "MergeResult", "PROBLEM_KINDS"]

#: Kinds of problem :func:`merge` reports (never silently dropped).
PROBLEM_KINDS = (
    "sample_not_in_manifest",
    "sample_without_clinical_row",
    "clinical_row_without_samples",
    "duplicate_clinical_row",
    "visit_does_not_parse",
    "missing_subject_or_visit",
)


@dataclass
class MergeResult:
    """``table``: the merged tidy table; ``problems``: one row per problem (kind, sample, subject,
    visit, message)."""

    table: pd.DataFrame
    problems: pd.DataFrame

    @property
    def ok(self) -> bool:
        return self.problems.empty

    def summary(self) -> str:
        if self.problems.empty:
            return "merge: no problems"
        counts = self.problems["kind"].value_counts()
        return "merge problems: " + ", ".join(f"{k} × {v}" for k, v in counts.items())


def read_clinical(
    path: str | Path, *, subject: str = "subject", visit: str = "visit"
) -> pd.DataFrame:
    """Read a clinical CSV (one row per subject × visit); checks the key columns exist."""
    p = Path(path)
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise ClinicalError(f"clinical table not found: {p}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ClinicalError(f"{p}: not a readable CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in (subject, visit) if c not in df.columns]
    if missing:
        raise ClinicalError(
            f"{p}: the clinical table needs key column(s) {', '.join(missing)}; it has: "
            f"{', '.join(df.columns)} (use --subject-column/--visit-column to name others)"
        )
    return df


def _visit_key(v) -> str:
    w = parse_visit(v)
    if w is not None:
        return f"w{w:g}"
    return str(v).strip().lower()


def merge(
    populations: pd.DataFrame,
    clinical: pd.DataFrame,
    manifest: pd.DataFrame | None = None,
    *,
    subject: str = "subject",
    visit: str = "visit",
    strict: bool = False,
) -> MergeResult:
    """Merge a populations table with the clinical table (and a manifest, if the populations do not
    carry subject and visit already).

    Visits match by the week they stand for when both labels parse (``W0`` = ``W00`` = ``week 0``),
    else by their text (case-insensitive). Every mismatch is reported in ``problems``; a sample
    without a clinical row keeps its rows with empty clinical columns.

    Parameters
    ----------
    populations
        Tidy table from ``cytophen gate`` (``populations.csv``): needs ``sample`` and ``population``.
    clinical
        One row per subject × visit; any other columns (SLEDAI, PGA, prednisone, response, ...).
    manifest
        ``sample`` (or ``file``) → ``subject``, ``visit`` and other metadata.
    subject, visit
        Names of the key columns (in the clinical table and manifest).
    strict
        Raise :class:`ClinicalError` instead of returning problems.
    """
    if "sample" not in populations.columns or "population" not in populations.columns:
        raise ClinicalError(
            "the populations table needs 'sample' and 'population' columns (populations.csv from cytophen gate)"
        )
    for col in (subject, visit):
        if col not in clinical.columns:
            raise ClinicalError(
                f"the clinical table has no {col!r} column; it has: {', '.join(clinical.columns)}"
            )
    problems: list[dict] = []
    pops = populations.copy()
    samples = pd.DataFrame({"sample": pops["sample"].astype(str).unique()})

    # 1. sample -> subject, visit (+ metadata)
    if manifest is not None:
        man = manifest.copy()
        man.columns = [str(c).strip() for c in man.columns]
        if "sample" not in man.columns and "file" not in man.columns:
            raise ClinicalError("the manifest needs a 'sample' or 'file' column")
        for col in (subject, visit):
            if col not in man.columns:
                raise ClinicalError(
                    f"the manifest has no {col!r} column; it has: {', '.join(man.columns)}"
                )
        if "sample" in man.columns:
            man["sample"] = man["sample"].astype(str)
        by_sample = man.set_index("sample") if "sample" in man.columns else None
        meta_cols = [c for c in man.columns if c not in ("sample", "file")]
        rows = []
        files = (
            pops.drop_duplicates("sample").set_index("sample")["file"]
            if "file" in pops.columns
            else None
        )
        for s in samples["sample"]:
            hit = None
            if by_sample is not None and s in by_sample.index:
                hit = by_sample.loc[s]
            elif "file" in man.columns and files is not None:
                base = Path(str(files.get(s, ""))).name
                m = man[man["file"].map(lambda f: Path(str(f)).name) == base]
                if len(m):
                    hit = m.iloc[0]
            if hit is None:
                problems.append(
                    dict(
                        kind="sample_not_in_manifest",
                        sample=s,
                        subject="",
                        visit="",
                        message=f"sample {s!r} is not in the manifest",
                    )
                )
                rows.append({"sample": s})
            else:
                rows.append({"sample": s, **{c: hit[c] for c in meta_cols}})
        meta = pd.DataFrame(rows)
        drop = [c for c in meta.columns if c != "sample" and c in pops.columns]
        pops = pops.drop(columns=drop).merge(meta, on="sample", how="left")
    elif subject not in pops.columns or visit not in pops.columns:
        raise ClinicalError(
            f"the populations table has no {subject!r}/{visit!r} columns; give a manifest "
            "(--manifest M.csv or --pattern REGEX) that maps samples to subjects and visits"
        )

    # 2. clinical keys
    clin = clinical.copy()
    clin["_subject"] = clin[subject].astype(str).str.strip()
    clin["_visit"] = clin[visit].map(_visit_key)
    if "week" not in clin.columns:
        clin["week"] = clin[visit].map(parse_visit)
    for _, r in clin[clin[visit].map(parse_visit).isna()].iterrows():
        problems.append(
            dict(
                kind="visit_does_not_parse",
                sample="",
                subject=r["_subject"],
                visit=str(r[visit]),
                message=f"clinical visit {r[visit]!r} does not parse as a study week (e.g. W0, W12, day 14)",
            )
        )
    dup = clin.duplicated(["_subject", "_visit"], keep=False)
    for (s, _v), g in clin[dup].groupby(["_subject", "_visit"]):
        problems.append(
            dict(
                kind="duplicate_clinical_row",
                sample="",
                subject=s,
                visit=str(g[visit].iloc[0]),
                message=f"{len(g)} clinical rows for subject {s} visit {g[visit].iloc[0]}; none used",
            )
        )
    clin_u = clin[~dup]

    # 3. join
    pops["_subject"] = pops[subject].astype("string").str.strip()
    pops["_visit"] = pops[visit].map(lambda v: _visit_key(v) if pd.notna(v) else pd.NA)
    per_sample = pops.drop_duplicates("sample")
    keys = set(zip(clin_u["_subject"], clin_u["_visit"]))
    dup_keys = set(zip(clin[dup]["_subject"], clin[dup]["_visit"]))
    for _, r in per_sample.iterrows():
        if pd.isna(r["_subject"]) or pd.isna(r["_visit"]):
            if not any(p["sample"] == r["sample"] for p in problems):
                problems.append(
                    dict(
                        kind="missing_subject_or_visit",
                        sample=r["sample"],
                        subject="",
                        visit="",
                        message=f"sample {r['sample']!r} has no subject or visit",
                    )
                )
            continue
        k = (r["_subject"], r["_visit"])
        if k not in keys and k not in dup_keys:
            problems.append(
                dict(
                    kind="sample_without_clinical_row",
                    sample=r["sample"],
                    subject=k[0],
                    visit=str(r[visit]),
                    message=f"no clinical row for subject {k[0]} visit {r[visit]}",
                )
            )
    sample_keys = set(zip(per_sample["_subject"].astype(str), per_sample["_visit"].astype(str)))
    for _, r in clin_u.iterrows():
        if (r["_subject"], r["_visit"]) not in sample_keys:
            problems.append(
                dict(
                    kind="clinical_row_without_samples",
                    sample="",
                    subject=r["_subject"],
                    visit=str(r[visit]),
                    message=f"clinical row subject {r['_subject']} visit {r[visit]} has no sample",
                )
            )
    clin_cols = [c for c in clin_u.columns if c not in (subject, visit, "_subject", "_visit")]
    right = clin_u[["_subject", "_visit", *clin_cols]]
    clash = [c for c in clin_cols if c in pops.columns]
    pops = pops.drop(columns=clash)
    out = pops.merge(right, on=["_subject", "_visit"], how="left").drop(
        columns=["_subject", "_visit"]
    )
    first = [c for c in ("sample", subject, visit, "week", "population") if c in out.columns]
    out = out[first + [c for c in out.columns if c not in first]]
    prob = pd.DataFrame(problems, columns=["kind", "sample", "subject", "visit", "message"])
    if strict and not prob.empty:
        raise ClinicalError(
            "merge found problems:\n" + "\n".join(f"  {m}" for m in prob["message"])
        )
    return MergeResult(out, prob)
