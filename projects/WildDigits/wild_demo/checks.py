"""What a run's figures say: the comparisons the verdicts are made of (the paper's claims under its protocol, and
what a careful reader asks next), each a paired margin of two rows' APs on one fold (a verdict needs the folds:
``wild_demo.summary``); the split of U^P's loss against the oracle; and the checks that make the miniature a
valid test of the method (they are not the paper's claims). Table 3 (``--table 3``) has its own: each step of
the table, and the check that its larger teacher is clearly stronger."""
from typing import NamedTuple, Optional, Tuple

from .rows import ROWS

# the rows trained on the teacher's pseudo-labels of pool images (the oracle's true boxes are not pseudo-labels)
PSEUDO_LABELLED_ROWS = tuple(r.key for r in ROWS if r.selection not in (None, "oracle"))


class Comparison(NamedTuple):
    """"``better`` beats ``worse``" on a fold: the margin is the AP of row ``better`` minus the highest AP of the
    rows ``worse`` (one row; several for "above every one of them")."""

    name: str
    better: str
    worse: Tuple[str, ...]


def margin_of(comparison: Comparison, ap: dict) -> Optional[float]:
    """``comparison``'s margin on one fold's ``{row key: AP}``, over the ``worse`` rows it has; None where it lacks
    ``better`` or every ``worse`` row."""
    worse = [ap[k] for k in comparison.worse if k in ap]
    return None if comparison.better not in ap or not worse else ap[comparison.better] - max(worse)


def _both_taus(name, better, worse):
    return tuple(Comparison(name.format(tau=tau), better.format(tau=tau), (worse.format(tau=tau),))
                 for tau in (0.5, 0.9))


# the verdicts: the paper's claims under its protocol (each student the rule's iterations), then a careful
# reader's questions (equal iterations, the practitioner's selection, the ceiling)
VERDICTS = (
    Comparison("SD > labeled only", "sd", ("baseline",)),
    *_both_taus("U^P > SD at tau {tau}", "pu_{tau}", "sd"),
    *_both_taus("U^P > U^R at tau {tau}", "pu_{tau}", "random_{tau}"),
    *_both_taus("U^P > SD at equal iterations, tau {tau}", "pu_{tau}", "sd_2x"),
    *_both_taus("U^P > labeled only at equal iterations, tau {tau}", "pu_{tau}", "teacher_2x"),
    Comparison("U^P > U^C at tau 0.5", "pu_0.5", ("confidence_0.5",)),
    Comparison("the oracle > every pseudo-labelled row", "oracle", PSEUDO_LABELLED_ROWS),
    Comparison("the oracle > SD at equal iterations", "oracle", ("sd_2x",)),
)
# U^P's loss against the oracle (tau 0.5), split in two: what the selection costs (the oracle's K scenes against
# U^P's, both labelled by the teacher) and what the teacher's labels cost (true boxes against the teacher's, both on
# the oracle's scenes)
SPLIT = (
    Comparison("selection: the oracle's scenes > U^P's, both with the teacher's pseudo-labels", "oracle_selection",
               ("pu_0.5",)),
    Comparison("labels: true boxes > the teacher's, both on the oracle's scenes", "oracle", ("oracle_selection",)),
)
CHECKS = {
    "separable": "the pool is separable (the region oracle's pool AUC; reported, no pass mark)",
    "fooled": "the teacher is fooled by the pool (>= 0.3 boxes/img above 0.5 on its negative scenes)",
    "ceiling": "the oracle ceiling (the oracle row >= 4 AP above labeled only)",
}


def printed(x):
    """AP as the report prints it (0.1)."""
    return round(x, 1)


def check_miniature(*, region_oracle_auc=None, negative=None, ap=None):
    """The miniature's validity checks on this run's figures (None: not measured), in the order of ``CHECKS``,
    judged on the APs as the report prints them: ``[{"check", "measured", "value", "verdict": "holds" | "does not
    hold" | "reported" | "not measured"}]`` (``value``: the check's figure, for a summary over runs)."""
    ap = ap or {}
    checks = []

    def add(name, value, measured, verdict):
        checks.append({"check": CHECKS[name], "measured": "not measured" if value is None else measured,
                       "value": value, "verdict": "not measured" if value is None else verdict})

    auc = region_oracle_auc
    add("separable", auc, None if auc is None else f"AUC {auc:.1f}", "reported")
    boxes = None if negative is None else negative["boxes/img"]
    add("fooled", boxes, None if boxes is None else f"{boxes:.2f} boxes/img",
        "holds" if boxes is not None and boxes >= 0.3 else "does not hold")
    gain = printed(printed(ap["oracle"]) - printed(ap["baseline"])) if "oracle" in ap and "baseline" in ap else None
    add("ceiling", gain, None if gain is None else f"AP {ap['oracle']:.1f}: {gain:+.1f} over labeled only",
        "holds" if gain is not None and gain >= 4 else "does not hold")
    return checks


def _table3_steps(prefix, baseline, setting):
    return (
        Comparison(f"{setting}: + hint > {baseline[1]}", f"{prefix}_hint", (baseline[0],)),
        Comparison(f"{setting}: + L_kdc > + hint", f"{prefix}_hint_kdc", (f"{prefix}_hint",)),
        Comparison(f"{setting}: + L_kdr > + L_kdc", f"{prefix}_all", (f"{prefix}_hint_kdc",)),
        Comparison(f"{setting}: + L_kdr as Eq. 15 reads > + L_kdc", f"{prefix}_eq15", (f"{prefix}_hint_kdc",)),
        Comparison(f"{setting}: the default L_kdr > Eq. 15's", f"{prefix}_all", (f"{prefix}_eq15",)),
        Comparison(f"{setting}: all three terms > {baseline[1]}", f"{prefix}_all", (baseline[0],)),
    )


# Table 3's steps: each term against the row above it, L_kdr as Eq. 15 reads against the row above it too, the
# default L_kdr against Eq. 15's, and the three terms together against the row without distillation
TABLE3_STEPS = (
    *_table3_steps("large", ("baseline", "the student alone"), "(i) larger teacher"),
    *_table3_steps("same", ("baseline", "the teacher"), "(ii) the same size"),
)
TABLE3_CHECKS = {
    "stronger": "the larger teacher is clearly stronger (its AP >= 3 above the student alone's)",
}


def check_table3(ap=None):
    """Table 3's check on this run's figures, as :func:`check_miniature`'s: its larger teacher must be clearly
    stronger than the student alone, for (i) to be a distillation from a larger detector."""
    ap = ap or {}
    found = "large_teacher" in ap and "baseline" in ap
    gain = printed(printed(ap["large_teacher"]) - printed(ap["baseline"])) if found else None
    return [{"check": TABLE3_CHECKS["stronger"],
             "measured": "not measured" if gain is None else f"AP {ap['large_teacher']:.1f}: {gain:+.1f}",
             "value": gain,
             "verdict": "not measured" if gain is None else "holds" if gain >= 3 else "does not hold"}]
