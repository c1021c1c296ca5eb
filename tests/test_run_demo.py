import pytest

from .helpers import load_script


@pytest.fixture(scope="module")
def demo():
    return load_script("projects", "WildDigits", "run_demo.py")


def test_claims_are_checked_on_the_rows_ap(demo):
    ap = {"baseline": 40.0, "sd": 40.5, "random_0.5": 40.2, "pu_0.5": 40.1, "random_0.9": 39.0, "pu_0.9": 40.0}
    claims = {c["claim"]: (c["verdict"], c["evidence"]) for c in demo.check_claims(ap)}
    assert claims == {
        "self-distillation beats the baseline": ("holds", "AP 40.5 vs 40.0"),
        "PU-selected beats randomly selected at tau 0.5": ("does not hold", "AP 40.1 vs 40.2"),
        "PU-selected at tau 0.5 beats the baseline": ("holds", "AP 40.1 vs 40.0"),
        "PU-selected beats randomly selected at tau 0.9": ("holds", "AP 40.0 vs 39.0"),
        # a tie is not a win
        "PU-selected at tau 0.9 beats the baseline": ("does not hold", "AP 40.0 vs 40.0"),
    }
    # rows without results are left out
    claims = demo.check_claims({"baseline": 1.0, "sd": 2.0})
    assert [c["claim"] for c in claims] == ["self-distillation beats the baseline"]


def test_rows_option(demo, capsys):
    assert demo.parse_args([]).rows.split(",") == [r[0] for r in demo.ROWS]
    assert demo.parse_args(["--rows", "sd,pu_0.9"]).rows == "sd,pu_0.9"
    with pytest.raises(SystemExit):
        demo.parse_args(["--rows", "sd,pu_0.7"])
    assert "unknown rows ['pu_0.7']" in capsys.readouterr().err
