"""What a run's figures say: the labeled-only noise, the paper's claims judged against it, and the checks that make
the miniature a valid test of the method (they are not the paper's claims). Claims and checks are judged on the
APs as the report prints them (0.1), so that a reader can redo each one from the table."""
from .rows import NOISE_ROWS, ROWS

# the rows trained on pseudo-labelled pool data (the oracle's true boxes are not pseudo-labels)
PSEUDO_LABELLED_ROWS = tuple(r.key for r in ROWS if r.selection not in (None, "oracle"))
CHECKS = {
    "separable": "the pool is separable (the region oracle's pool AUC; reported, no pass mark)",
    "fooled": "the teacher is fooled by the pool (>= 0.3 boxes/img above 0.5 on its negative scenes)",
    "ceiling": "the oracle ceiling (the oracle row >= 4 AP above labeled only, and above every pseudo-labelled row)",
    "noise": "the noise (the labeled-only spread over 3 training seeds; reported)",
    "train-longer": "train-longer: self-distillation beats the teacher at 2x iterations (a comparison a careful "
                    "reader asks for, not one of the paper's claims)",
}


def printed(x):
    """AP as the report prints it (0.1)."""
    return round(x, 1)


def margin(a, b):
    """``a - b`` of the printed APs."""
    return printed(printed(a) - printed(b))


def noise(ap):
    """``(APs, spread)``: the labeled-only rows' AP over the three training SEEDs (None where a row has no
    results) and their spread (max - min of the printed APs), None while one of them is missing."""
    aps = [ap.get(k) for k in NOISE_ROWS]
    return aps, (None if None in aps else printed(max(map(printed, aps)) - min(map(printed, aps))))


def _beyond(a, b, spread):
    """``(margin, verdict, evidence)`` of "AP ``a`` beats AP ``b`` beyond the noise ``spread``" (0 when the noise
    is not measured, and the evidence says so)."""
    m = margin(a, b)
    noise_text = "noise not measured" if spread is None else f"noise spread {spread:.1f}"
    verdict = "holds" if m > (spread or 0.0) else "does not hold"
    return m, verdict, f"AP {a:.1f} vs {b:.1f}: margin {m:+.1f}, {noise_text}"


def check_claims(ap, spread=None):
    """The paper's claims on this run's AP (rows missing from ``ap`` are left out): a claim holds when its
    margin exceeds the noise ``spread``. Returns ``[{"claim", "verdict": "holds" | "does not hold", "margin",
    "spread", "evidence"}]``."""
    pairs = [("self-distillation beats the baseline", "sd", "baseline")]
    for tau in (0.5, 0.9):
        pairs.append((f"PU-selected beats randomly selected at tau {tau}", f"pu_{tau}", f"random_{tau}"))
        pairs.append((f"PU-selected at tau {tau} beats the baseline", f"pu_{tau}", "baseline"))
    claims = []
    for claim, a, b in pairs:
        if a in ap and b in ap:
            m, verdict, evidence = _beyond(ap[a], ap[b], spread)
            claims.append({"claim": claim, "verdict": verdict, "margin": m, "spread": spread, "evidence": evidence})
    return claims


def check_miniature(*, region_oracle_auc=None, negative=None, ap=None, teacher_ap=None, teacher_2x_ap=None):
    """The miniature's validity checks on this run's figures (None: not measured), in the order of ``CHECKS``:
    ``[{"check", "measured", "value", "verdict": "holds" | "does not hold" | "reported" | "not measured"}]``
    (``value``: the check's figure, for a summary over runs)."""
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
    gain = margin(ap["oracle"], ap["baseline"]) if "oracle" in ap and "baseline" in ap else None
    measured, verdict = None, None
    if gain is not None:
        trained = [k for k in PSEUDO_LABELLED_ROWS if k in ap]
        best = max(trained, key=lambda k: printed(ap[k]), default=None)
        above = None if best is None else margin(ap["oracle"], ap[best])
        measured = f"AP {ap['oracle']:.1f}: {gain:+.1f} over labeled only" + (
            "" if best is None else f", {above:+.1f} over the best pseudo-labelled row ({best})")
        verdict = "holds" if gain >= 4 and (above is None or above > 0) else "does not hold"
    add("ceiling", gain, measured, verdict)
    aps, spread = noise(ap)
    add("noise", spread, None if spread is None else f"{' / '.join(f'{a:.1f}' for a in aps)}: spread {spread:.1f}",
        "reported")
    m, verdict, evidence = (None, None, None) if "sd" not in ap or teacher_2x_ap is None else _beyond(
        ap["sd"], teacher_2x_ap, spread)
    if evidence is not None and teacher_ap is not None:
        evidence += f" (the teacher at 2x iterations: {margin(teacher_2x_ap, teacher_ap):+.1f} over the teacher)"
    add("train-longer", m, evidence, verdict)
    return checks
