"""`fxtrain train`: outputs, report keys, and one clear line + exit 1 for each bad input."""
import json

import numpy as np
import pytest

from cli_helpers import invoke, one_line_error


def test_train_writes_model_and_report(tmp_path):
    out = tmp_path / "run"
    r = invoke("train", "--epochs", 2, "--out", out)
    assert r.exit_code == 0, r.output
    assert "epoch" in r.output and "test acc" in r.output
    report = json.loads((out / "report.json").read_text())
    for key in ("method", "bits", "seed", "arch", "epochs", "train_accuracy", "test_accuracy",
                "history", "n_weights", "fxtrain_version"):
        assert key in report
    assert report["arch"] == "dense:32,dense:10" and report["n_weights"] == 64 * 32 + 32 * 10
    assert set(report["history"][0]) >= {"loss", "train_accuracy", "test_accuracy", "changed_fraction"}
    with np.load(out / "model.npz") as z:
        assert z["layer0_weight_q"].dtype == np.int8 and z["layer0_weight_q"].shape == (32, 64)
        assert z["layer1_bias_q"].dtype == np.int32 and int(z["layer0_weight_exp"]) < 0
        assert not any("float" in k for k in z.files)  # sr saves integers only


def test_bc_model_names_its_shadow(tmp_path):
    r = invoke("train", "--method", "bc", "--epochs", 1, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "model.npz") as z:
        assert z["layer0_weight_shadow_float32"].dtype == np.float32
        assert z["layer0_weight_q"].dtype == np.int8


def test_cli_resume_continues_to_same_weights(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke("train", "--epochs", 4, "--out", a).exit_code == 0
    assert invoke("train", "--epochs", 2, "--out", b).exit_code == 0
    r = invoke("train", "--epochs", 4, "--resume", b)
    assert r.exit_code == 0, r.output
    with np.load(a / "model.npz") as za, np.load(b / "model.npz") as zb:
        for k in za.files:
            assert np.array_equal(za[k], zb[k]), k


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD_ROWS = "".join(f"{i % 7}.5,{(i * 3) % 5}.25,{i % 2}\n" for i in range(40))


@pytest.mark.parametrize("content,needle", [
    ("1.0,2.0,0\nnan,1.0,1\n" + GOOD_ROWS, "row 2, column 1"),
    ("1.0,2.0,0\ninf,1.0,1\n" + GOOD_ROWS, "finite"),
    ("1.0,2.0,0\n1.0,1\n" + GOOD_ROWS, "row 2 has 2 columns"),
    ("1.0,2.0,0\n1.0,abc,1\n" + GOOD_ROWS, "'abc' is not a number"),
    ("1.0,2.0,0\n1.0,2.0,1.5\n" + GOOD_ROWS, "labels must be integers"),
    ("", "empty"),
])
def test_bad_csv_gets_one_line(tmp_path, content, needle):
    one_line_error(invoke("train", "--data", write(tmp_path, "d.csv", content), "--epochs", 1), needle)


def test_good_csv_trains(tmp_path):
    r = invoke("train", "--data", write(tmp_path, "d.csv", "a,b,label\n" + GOOD_ROWS),
               "--epochs", 1, "--arch", "dense:8,dense:2", "--batch", 4, "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # the header row is skipped: 40 rows, 2 features, 2 classes, split 80/20 per class
    assert report["arch"] == "dense:8,dense:2" and report["n_weights"] == 2 * 8 + 8 * 2
    assert "sr 8-bit dense:8,dense:2: test accuracy" in r.output and len(report["history"]) == 1


def test_bad_npz_and_missing_file(tmp_path):
    np.savez(tmp_path / "x.npz", X=np.zeros((10, 3)))
    one_line_error(invoke("train", "--data", tmp_path / "x.npz"), "missing array", "'y'")
    one_line_error(invoke("train", "--data", tmp_path / "nope.csv"), "neither a file nor one of")


def test_feature_count_must_match_arch(tmp_path):
    # a conv arch on flat 2-feature data, and a last layer that disagrees with the classes
    one_line_error(invoke("train", "--data", "moons", "--arch", "conv:4:3,dense:2"), "image input")
    one_line_error(invoke("train", "--data", "moons", "--arch", "dense:8,dense:10"), "2 classes")


@pytest.mark.parametrize("args,needle", [
    (["--arch", "dense:32,foo:3,dense:10"], "unknown arch token 'foo:3'"),
    (["--arch", "dense:x,dense:10"], "not a whole number"),
    (["--bits", "5"], "bit width"),
    (["--lr", "0"], "positive"),
    (["--lr", "-0.5"], "positive"),
    (["--lr", "0.1"], "16-bit"),
    (["--epochs", "0"], "positive"),
    (["--batch", "-3"], "positive"),
    (["--batch", "100000"], "larger than"),
    (["--momentum", "0.9"], "1 - 2^-j"),
])
def test_bad_settings_get_one_line(args, needle):
    one_line_error(invoke("train", *args), needle)


def test_resume_errors(tmp_path):
    one_line_error(invoke("train", "--resume", tmp_path), "not a checkpoint")
    assert invoke("train", "--epochs", 1, "--out", tmp_path / "c").exit_code == 0
    one_line_error(invoke("train", "--resume", tmp_path / "c", "--bits", 4), "other settings", "bits=8")


def test_bad_input_leaves_existing_out_untouched(tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "--epochs", 1, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one_line_error(invoke("train", "--epochs", 1, "--out", out, "--arch", "bogus"), "bogus")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
