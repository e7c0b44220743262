"""The data analyzers (issue 25): ``data.drift`` and ``data.leakage``. Known answers for their statistics,
the zoo's data-fault twins flagged through the CLI with the cause in the message, and the healthy zoo
models free of errors from them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import ZOO_DIR, read_report, run_diagnose


def test_holm_and_benjamini_hochberg_known_answers():
    """Worked by hand: p = (0.01, 0.04, 0.03, 0.005), m = 4. Holm, sorted: 4 x 0.005 = 0.02, 3 x 0.01 = 0.03,
    2 x 0.03 = 0.06, 1 x 0.04 = 0.04 raised to the running maximum 0.06. BH, sorted: 4/1 x 0.005 = 0.02,
    4/2 x 0.01 = 0.02, 4/3 x 0.03 = 0.04, 4/4 x 0.04 = 0.04 (already monotone)."""
    from diagnostics_plugins.data_drift import benjamini_hochberg, holm

    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # capped at 1, ties kept, empty input
    assert holm([0.5, 0.5, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert benjamini_hochberg([0.5, 0.5, 0.9]) == pytest.approx([0.75, 0.75, 0.9])
    assert len(holm([])) == 0
    # a step-up procedure: BH never rejects less than Holm
    rng = np.random.default_rng(0)
    q = rng.random(50) ** 4
    assert (benjamini_hochberg(q) <= holm(q) + 1e-15).all()


def test_two_sample_chooses_ks_or_chi_squared():
    from diagnostics_plugins.data_drift import two_sample

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=500), rng.normal(size=500) + 1.0
    ks = two_sample(a, b, 10)
    assert ks["test"] == "KS" and 0.3 < ks["statistic"] < 0.5 and ks["p"] < 1e-10
    same = two_sample(a, rng.normal(size=500), 10)
    assert same["statistic"] < 0.1 and same["p"] > 0.01
    # few values: chi-squared, its size the total variation of the frequencies (0.7/0.3 vs 0.3/0.7 -> 0.4)
    cat = two_sample(np.r_[np.zeros(70), np.ones(30)], np.r_[np.zeros(30), np.ones(70)], 10)
    assert cat["test"] == "chi-squared" and cat["statistic"] == pytest.approx(0.4) and cat["p"] < 1e-6
    assert two_sample(np.ones(5), np.ones(7), 10) == {"test": "constant", "statistic_name": "D", "statistic": 0.0,
                                                      "p": 1.0}


def test_mmd_permutation_test():
    """Gretton et al.'s unbiased MMD^2: about 0 for two samples of one distribution (p not small), clearly
    positive with a permutation p at its floor for a shifted one; the statistic by hand on a tiny case."""
    from diagnostics_plugins.data_drift import mmd_permutation_test

    rng = np.random.default_rng(0)
    same = mmd_permutation_test(rng.normal(size=(200, 4)), rng.normal(size=(150, 4)), 99, seed=1)
    assert abs(same[0]) < 0.01 and same[1] > 0.05
    moved = mmd_permutation_test(rng.normal(size=(200, 4)), rng.normal(size=(150, 4)) + 1.0, 99, seed=1)
    assert moved[0] > 0.1 and moved[1] == pytest.approx(1 / 100)
    # by hand: a = {0, 0}, b = {1, 1} in one dimension; the median pairwise squared distance is 1 (4 of the 6
    # pairs), so k(0, 1) = e^-1 and k within a split = 1: MMD^2 = 1 + 1 - 2 e^-1
    mmd2, _, bandwidth = mmd_permutation_test(np.zeros((2, 1)), np.ones((2, 1)), 0)
    assert mmd2 == pytest.approx(2 - 2 * np.exp(-1)) and bandwidth == pytest.approx(np.sqrt(0.5))


def test_feature_names_come_from_the_data():
    from diagnostics import Data

    named = Data(x_train=np.zeros((2, 2)), extras={"feature_names": np.array(["age", "dose"])})
    assert named.feature_names(2) == ["age", "dose"]
    assert named.feature_names(3) == ["feature 0", "feature 1", "feature 2"]  # a list that does not fit is not used
    assert Data().feature_names(1) == ["feature 0"]


def _findings(out, analyzer):
    report = read_report(out)
    (a,) = [a for a in report["analyzers"] if a["name"] == analyzer]
    assert a["status"] == "ok", a.get("reason")
    return a, a["findings"]


@pytest.mark.parametrize("keys", [("x_val", "y_val"), ("x", "y")])
def test_drift_names_every_shifted_feature_of_a_data_file(tmp_path, keys):
    """Two features of the breast-cancer table shifted in the evaluation data of a --data file (one moved by
    a standard deviation, one in other units), given as the validation split or as evaluation data (x, y)
    beside the training split: both named, each with its statistic and corrected p-value, and no other."""
    import diagnostics_zoo as zoo

    d = zoo.DATASETS["breast_cancer"](0)
    x_val = d["x_val"].copy()
    x_val[:, 0] += 1.0
    x_val[:, 5] *= 2.5
    np.savez(tmp_path / "shift.npz", x_train=d["x_train"], y_train=d["y_train"], **{keys[0]: x_val, keys[1]: d["y_val"]})
    out = tmp_path / "out"
    proc = run_diagnose(ZOO_DIR / "mlp.keras", "--data", tmp_path / "shift.npz", "--only", "data.drift", "--out", out,
                        "-q")
    assert proc.returncode == 1, proc.stderr
    a, findings = _findings(out, "data.drift")
    shifted = {f["where"]: f for f in findings if f["code"] == "data.drift.feature_shift"}
    assert set(shifted) == {"feature 0", "feature 5"}
    for f in shifted.values():
        assert f["severity"] == "error"
        assert "KS D" in f["message"] and "Holm-corrected p" in f["message"]
        assert "unlike those it was trained on" in f["message"] and "same units in every split" in f["message"]
    assert a["metrics"]["shifted"] == ["feature 0", "feature 5"]


def test_single_feature_accuracy_known_answers():
    """A copy of the label (with jitter far below the gap between the classes) is perfect on held-out rows;
    pure noise and a row number (a distinct value per row, which a fitted lookup table would memorise) are at
    chance, since every sample is scored by the other half of the split."""
    from diagnostics_plugins.data_leakage import single_feature_accuracy

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    assert single_feature_accuracy(2 * y - 1 + rng.normal(0, 0.1, 400), y) == 1.0
    assert abs(single_feature_accuracy(rng.normal(size=400), y) - 0.5) < 0.08
    assert abs(single_feature_accuracy(np.arange(400.0), y) - 0.5) < 0.08
    y3 = rng.integers(0, 3, 300)
    assert single_feature_accuracy(y3 + rng.normal(0, 0.05, 300), y3) == 1.0
    # d' = 2 between two normals: the Bayes rate is Phi(1) = 0.84
    assert 0.75 < single_feature_accuracy(2.0 * y + rng.normal(size=400), y) < 0.9


def test_nearest_distances_and_wilson():
    from diagnostics_plugins.data_leakage import nearest_distances, wilson

    ref = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    d, i = nearest_distances(np.array([[3.0, 4.0], [9.0, 0.0], [0.0, 1.0]]), ref, chunk=2)
    assert d == pytest.approx([0.0, 1.0, 1.0]) and i.tolist() == [1, 2, 0]
    lo, hi = wilson(0, 100)
    assert lo == 0.0 and hi == pytest.approx(0.0370, abs=1e-4)  # the textbook value for 0 of 100
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)


def test_leakage_finds_duplicates_across_the_splits(tmp_path):
    """A tenth of the validation rows copied from the training split (half of them exactly, half with
    jitter far below the data's spread): the share is measured with its interval and judged an error."""
    import diagnostics_zoo as zoo

    d = zoo.DATASETS["breast_cancer"](0)
    x_val, y_val = d["x_val"].copy(), d["y_val"].copy()
    rng = np.random.default_rng(0)
    rows = rng.choice(len(d["x_train"]), 14, replace=False)
    x_val[:7] = d["x_train"][rows[:7]]
    x_val[7:14] = d["x_train"][rows[7:]] + rng.normal(0, 0.005, (7, x_val.shape[1])).astype(np.float32)
    y_val[:14] = d["y_train"][rows]
    np.savez(tmp_path / "dup.npz", x_train=d["x_train"], y_train=d["y_train"], x_val=x_val, y_val=y_val)
    out = tmp_path / "out"
    proc = run_diagnose(ZOO_DIR / "mlp.keras", "--data", tmp_path / "dup.npz", "--only", "data.leakage", "--out", out,
                        "-q")
    assert proc.returncode == 1, proc.stderr
    a, findings = _findings(out, "data.leakage")
    (f,) = [f for f in findings if f["code"] == "data.leakage.duplicates"]
    assert f["severity"] == "error"
    assert "7 exact and 7 near duplicate(s) among 142 validation samples" in f["message"]
    assert "scored on samples it was trained on" in f["message"] and "split by group" in f["message"]
    assert a["metrics"]["duplicates"]["share"] == pytest.approx(14 / 142)


#: each data-fault twin: its analyzer, the code it must get, where, and the words that name the cause
TWIN_CASES = {
    "mlp_shift": ("data.drift", "data.drift.feature_shift", {"worst area", "worst texture"},
                  ("KS D", "Holm-corrected p", "unlike those it was trained on", "is not overfitting",
                   "same units in every split")),
    "mlp_label_copy": ("data.leakage", "data.leakage.label_feature", {"diagnosis_code"},
                       ("predicts the label on its own far better than every other feature", "target leak",
                        "no train/validation gap shows it", "Remove the column")),
    "cnn_unscaled": ("data.drift", "data.drift.range_mismatch", {"inputs"},
                     ("the validation inputs lie in [0, 255], the training inputs in [-1, 1]: a preprocessing step "
                      "is missing", "apply the same preprocessing to every split")),
}


@pytest.mark.parametrize("twin", sorted(TWIN_CASES))
def test_data_twin_flagged_through_the_cli_with_its_cause(twin, tmp_path):
    analyzer, code, wheres, words = TWIN_CASES[twin]
    proc = run_diagnose(ZOO_DIR / f"{twin}.keras", "--only", analyzer, "--out", tmp_path, "-q")
    assert proc.returncode == 1, proc.stderr  # an error finding
    record, findings = _findings(tmp_path, analyzer)
    hits = [f for f in findings if f["code"] == code]
    if analyzer == "data.drift":  # the histograms of the shifted inputs are in the report
        assert (tmp_path / record["artifacts"]["drift"]).is_file()
    assert {f["where"] for f in hits} == wheres, findings
    for f in hits:
        assert f["severity"] in ("warning", "error")
        for w in words:
            assert w in f["message"], (w, f["message"])
    expected = json.loads((ZOO_DIR / f"{twin}.meta.json").read_text())["expected_findings"]
    assert [e["code"] for e in expected] == [code]


@pytest.mark.parametrize("healthy", ["mlp", "cnn", "lstm"])
def test_healthy_models_get_no_error_from_the_data_analyzers(healthy, tmp_path):
    proc = run_diagnose(ZOO_DIR / f"{healthy}.keras", "--only", "data.drift", "--only", "data.leakage", "--out",
                        tmp_path, "-q")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for analyzer in ("data.drift", "data.leakage"):
        _, findings = _findings(tmp_path, analyzer)
        assert not [f for f in findings if f["severity"] == "error"], findings


def test_each_twin_is_clean_under_the_other_data_analyzer(tmp_path):
    """A fault in one place is named there only: the shifted table has no leak, the leaking table no shift."""
    for twin, other in (("mlp_shift", "data.leakage"), ("mlp_label_copy", "data.drift")):
        out = tmp_path / twin
        run_diagnose(ZOO_DIR / f"{twin}.keras", "--only", other, "--out", out, "-q")
        _, findings = _findings(out, other)
        assert not [f for f in findings if f["severity"] in ("warning", "error")], (twin, findings)


def test_places_are_grid_cells_and_steps():
    from diagnostics_plugins.data_leakage import places

    x = np.zeros((2, 28, 28, 1))
    x[0, 0:4, 0:4] = 1.0
    (ft, fv), names = places(x, x)
    assert ft.shape == (2, 49) and names[0] == "rows 0-3, columns 0-3" and names[-1] == "rows 24-27, columns 24-27"
    assert ft[0, 0] == 1.0 and ft[0, 1:].sum() == 0.0 and ft[1].sum() == 0.0
    seq = np.arange(2 * 120 * 2, dtype=float).reshape(2, 120, 2)
    (st, _), names = places(seq, seq)
    assert st.shape == (2, 64) and names[0] == "steps 0-1" and names[-1] == "step 119"
    assert st[0, 0] == pytest.approx(seq[0, 0:2].mean())


def test_leakage_finds_the_clever_hans_mark_as_a_training_only_region(tmp_path):
    """cnn_shortcut's data: the 4x4 mark (rows 0-3, columns 0-3) is the label in training only. The data show
    it without the model: a warning at exactly the mark's cell (the shortcut analyzer's error says the model
    uses it)."""
    from diagnostics_zoo.datasets import MARK_COLS, MARK_ROWS

    run_diagnose(ZOO_DIR / "cnn_shortcut.keras", "--only", "data.leakage", "--out", tmp_path, "-q")
    _, findings = _findings(tmp_path, "data.leakage")
    (f,) = [f for f in findings if f["code"] == "data.leakage.label_feature"]
    assert f["severity"] == "warning"
    assert f["where"] == f"rows {MARK_ROWS[0]}-{MARK_ROWS[1] - 1}, columns {MARK_COLS[0]}-{MARK_COLS[1] - 1}"
    assert "on the training split it alone reaches balanced accuracy 1.000" in f["message"]
    assert "in the training split only" in f["message"] and "watermark" in f["message"]


def test_drift_compares_token_counts_per_sequence(tmp_path):
    """A token model's evaluation data in which 30% of the neutral tokens became padding (id 0, never used in
    training): the ids never seen in training and the length before padding are the errors, named as such;
    the healthy transformer's own splits are clean."""
    import diagnostics_zoo as zoo
    from diagnostics.health import token_counts

    (ct, cv), names, info = token_counts(np.array([[1, 2, 2, 0]]), np.array([[3, 2, 0, 0]]), top=1)
    assert names == ["token id 2", "other ids", "ids never seen in training", "length (non-zero ids)"]
    assert ct.tolist() == [[2.0, 1.0, 0.0, 3.0]] and cv.tolist() == [[1.0, 0.0, 1.0, 2.0]]
    assert info == {"vocabulary_in_training": 3, "compared": 1, "unseen_share_in_validation": 0.25}
    d = zoo.DATASETS["polarity_tokens"](0)
    x_val = d["x_val"].copy()
    x_val[(x_val >= 7) & (np.random.default_rng(0).random(x_val.shape) < 0.3)] = 0
    np.savez(tmp_path / "tokens.npz", x_train=d["x_train"], y_train=d["y_train"], x_val=x_val, y_val=d["y_val"])
    out = tmp_path / "out"
    run_diagnose(ZOO_DIR / "transformer.keras", "--data", tmp_path / "tokens.npz", "--only", "data.drift", "--out",
                 out, "-q")
    _, findings = _findings(out, "data.drift")
    errors = {f["where"] for f in findings if f["severity"] == "error"}
    assert {"ids never seen in training", "length (non-zero ids)"} <= errors, findings


def test_leakage_finds_a_token_that_is_the_label_and_the_healthy_transformer_has_none(tmp_path):
    """A token model's texts in which every positive sequence carries token 29 once (a label word left in the text)
    in both splits: its count per sequence is the label, so it is named at error, as present in the validation split
    too; the healthy transformer's own splits, whose polarity tokens each predict the label only in part, are clean."""
    import diagnostics_zoo as zoo

    d = zoo.DATASETS["polarity_tokens"](0)
    rng = np.random.default_rng(0)
    leaked = {}
    for split in ("train", "val"):
        x, y = d[f"x_{split}"].copy(), d[f"y_{split}"]
        x[x == 29] = 28  # 29 marks the label alone
        for i in np.flatnonzero(y == 1):
            x[i, rng.choice(np.flatnonzero(x[i] >= 7))] = 29  # a neutral position
        leaked[f"x_{split}"], leaked[f"y_{split}"] = x, y
    np.savez(tmp_path / "leak.npz", **leaked)
    out = tmp_path / "leak"
    run_diagnose(ZOO_DIR / "transformer.keras", "--data", tmp_path / "leak.npz", "--only", "data.leakage", "--out", out,
                 "-q")
    _, findings = _findings(out, "data.leakage")
    (f,) = [f for f in findings if f["code"] == "data.leakage.label_feature"]
    assert (f["severity"], f["where"]) == ("error", "token id 29")
    for words in ("token id 29 (its count per sequence) predicts the label on its own far better than every other token",
                  "present in the validation split too", "Remove that token from the texts"):
        assert words in f["message"], f["message"]
    clean = tmp_path / "clean"
    run_diagnose(ZOO_DIR / "transformer.keras", "--only", "data.leakage", "--out", clean, "-q")
    record, findings = _findings(clean, "data.leakage")
    assert [f for f in findings if f["severity"] in ("warning", "error")] == []
    assert record["metrics"]["label_features"] == [] and "token id 1" in record["metrics"]["single_feature_accuracy"]


def test_a_hostile_feature_name_is_drawn_literally_and_escaped_in_the_report(tmp_path):
    """A feature name from the data file labels the drift histogram: a ``$`` would start matplotlib's mathtext
    (an unparsable one raised, failing the analyzer), and markup would reach the HTML page."""
    import diagnostics_zoo as zoo

    d = zoo.DATASETS["breast_cancer"](0)
    x_val = d["x_val"].copy()
    x_val[:, 0] += 1.0
    hostile = "a$\\frac{$<script>x</script>"
    names = np.array([hostile] + [f"f{i}" for i in range(1, d["x_train"].shape[1])])
    np.savez(tmp_path / "shift.npz", x_train=d["x_train"], y_train=d["y_train"], x_val=x_val, y_val=d["y_val"],
             feature_names=names)
    out = tmp_path / "out"
    proc = run_diagnose(ZOO_DIR / "mlp.keras", "--data", tmp_path / "shift.npz", "--only", "data.drift", "--out", out,
                        "-q")
    assert proc.returncode == 1, proc.stderr
    a, findings = _findings(out, "data.drift")
    assert a["status"] == "ok", a.get("reason")
    assert [f["where"] for f in findings if f["code"] == "data.drift.feature_shift"] == [hostile]
    assert "drift" in a["artifacts"]  # the histogram was drawn with the name as its panel title
    html = (out / "report.html").read_text()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
