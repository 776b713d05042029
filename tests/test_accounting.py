"""Device accounting, fit checks, `fxtrain simulate`, `fxtrain targets` and `fxtrain compare`."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from fxtrain.cli import cli
from fxtrain.device.cost import Fit, account
from fxtrain.device.fit import fit_for, largest_width
from fxtrain.device.profiles import load_target
from fxtrain.engine.network import parse_arch

DIGITS = ((8, 8, 1), 10, 1437)  # input shape, classes, training samples


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def cost(method, bits=8, batch=16, arch=None):
    layers = parse_arch(arch, (8, 8, 1), 10)
    return account(layers, method, bits, batch, 1437, 64, 10), layers


def test_default_buffers_follow_the_documented_formulas():
    c, layers = cost("sr")
    b, widest = 16, 64
    expect = {"weights": 64 * 32 + 32 * 10, "biases": 4 * (32 + 10), "act0": b * 32, "act1": b * 10,
              "input": b * 64, "labels": b, "acc": 4 * b * widest, "err": 2 * b * widest, "grad": 4 * 64,
              "gbias": 4 * 32, "probs": 4 * 10, "exponents": 4 * 3, "perm": 2 * 1437, "rng": 4,
              "counters": 4 * 5 * 2,
              # the kernels' scratch: no input row needs re-aligning (a word at least), the output errors
              # do (10 -> 12), and four columns of the 32x10 weights are gathered for the error below
              "opa": 4, "opb": b * 12, "rows": 4 * 12}
    assert c.buffers == expect
    assert c.total_bytes == sum(expect.values())
    assert c.labels["act0"] == "activations[0] dense:32" and c.labels["weights"] == "weights (8-bit slots, packed)"


@pytest.mark.parametrize("bits, slot", [(1, 1), (2, 2), (3, 4), (4, 4), (6, 8), (8, 8), (12, 16), (16, 16)])
def test_training_weights_are_packed_in_the_smallest_slot(bits, slot):
    c, layers = cost("sr", bits=bits)
    # each layer packs W_l weights in ceil(W_l * slot / 8) bytes, starting on a byte
    assert c.buffers["weights"] == sum(-(-s.n_weights * slot // 8) for s in layers)
    bc, _ = cost("bc", bits=bits)
    assert bc.buffers["weights"] == c.buffers["weights"] and bc.buffers["shadow"] == 4 * (64 * 32 + 32 * 10)


def test_bc_costs_exactly_its_shadow_more_than_sr():
    sr, layers = cost("sr")
    bc, _ = cost("bc")
    n_w = sum(s.n_weights for s in layers)
    assert bc.buffers["shadow"] == 4 * n_w
    # BC has no optimizer state (plain SGD), so the difference is the shadow alone
    assert bc.total_bytes - sr.total_bytes == 4 * n_w
    # bc's update as update_bc states it: 2 fmul and 4 fadd-class per weight (sr's 0 is held to the
    # compiled code in tests/test_integer_only.py)
    assert (bc.fmul_per_step, bc.fadd_per_step) == (2 * n_w, 4 * n_w)


def test_operation_counts_are_the_units_the_cycles_price():
    sr, layers = cost("sr")
    b, n_w, n_b = 16, 64 * 32 + 32 * 10, 32 + 10
    # MACs: forward and gradient B*W_l per layer, input error the same without layer 0
    assert sr.int_macs_per_step == b * (2 * n_w + 32 * 10) == 80_896 and sr.wide_macs_per_step == 0
    # int ops, one a trip: a value scanned (forward outputs, errors below), an activation, a ReLU mask, an error
    # sent below, a softmax output, a weight and a bias updated, an input byte copied, and the step's own loop
    step = b * (42 + 32) + b * 42 + b * 32 + b * 32 + b * 10 + n_w + n_b + b * 64 + 1
    assert sr.int_ops_per_step == step == 6_475
    # the epoch adds its shuffle, one trip a sample
    assert sr.int_ops_per_epoch == step * (1437 // 16) + 1437
    # momentum: 6 int ops a weight on top
    mom = account(layers, "sr", 8, 16, 1437, 64, 10, momentum=True)
    assert mom.int_ops_per_step == step + 6 * n_w
    # float runs r's loops with an fmul and an fadd on every MAC and every update: its MACs are float, not int
    fl, _ = cost("float")
    assert (fl.int_macs_per_step, fl.wide_macs_per_step, fl.int_ops_per_step) == (0, 0, step)
    assert fl.fmul_per_step == fl.fadd_per_step == sr.int_macs_per_step + n_w + n_b
    # and at a batch whose sums need int64 for sr, float still has no wide sum or multiply to pay
    big = dict(n_train=200 * 196, batch=196)
    wide_sr = account(layers, "sr", 8, big["batch"], big["n_train"], 64, 10, step_m=2**23 + 1)
    wide_fl = account(layers, "float", 8, big["batch"], big["n_train"], 64, 10, step_m=2**23 + 1)
    assert wide_sr.wide_muls_per_step > 0
    assert (wide_fl.wide_macs_per_step, wide_fl.wide_muls_per_step) == (0, 0)


def test_bc_and_sr_differ_in_the_update_alone_and_soft_float_pays():
    from fxtrain.device.work import PHASES
    n_w, per_weight = 64 * 32 + 32 * 10, {}
    for name in ("cortex-m0plus", "cortex-m3", "cortex-m4"):
        t = load_target(name)
        bc, sr = fit_for(None, "bc", 8, 16, DIGITS, t), fit_for(None, "sr", 8, 16, DIGITS, t)
        diff = {p: bc.phase_cycles[p] - sr.phase_cycles[p] for p in PHASES}
        # the passes are shared, so every phase but the update costs the same
        assert all(diff[p] == 0 for p in PHASES if p != "update")
        # and the update differs by one unit per weight: bc's float step against sr's integer one
        prices = dict(t.unit_cycles)
        assert diff["update"] == pytest.approx(n_w * (prices["update_bc"] - prices["update_sr"]))
        per_weight[name] = prices["update_bc"] / prices["update_sr"]
    # fitted to measured instructions: libgcc's soft float on the cores without an FPU makes bc's weight
    # update many times sr's; the M4's FPU narrows the gap (see README, "Measured cost")
    assert per_weight["cortex-m0plus"] > per_weight["cortex-m3"] > per_weight["cortex-m4"] > 1


def test_a_unit_without_a_fitted_price_is_priced_from_its_operations():
    from fxtrain.device.work import unit_price
    atmega, m7 = load_target("atmega328p"), load_target("cortex-m7")
    assert atmega.unit_cycles == ()
    # its [unit_ops] (multiplies, loads and stores, other; the Cortex-M4's, borrowed) at the profile's op prices:
    # a dense MAC is 1 multiply, 2 loads and 2 other ops, 10 + 2 * 2 + 2 * 4 cycles on the AVR
    assert dict(atmega.unit_ops)["mac"] == (1, 2, 2) and unit_price(atmega, "mac") == 22
    c = atmega.cycles
    mac, ls, op = dict(atmega.unit_ops)["update_bc"]
    assert unit_price(atmega, "update_bc") == mac * c.int_mac + ls * c.load_store + op * c.int_op
    # a fitted price wins: the M7's update_bc is fitted since bc runs on it under Unicorn
    assert unit_price(m7, "update_bc") == dict(m7.unit_cycles)["update_bc"]
    # a unit a profile leaves out is priced as the unit it stands in for, fitted or from its operations: the
    # DSP column path (never counted on a core without one) as the portable conv, gap's sums as pooling's
    m0 = load_target("cortex-m0plus")
    assert "dsp_tap" not in dict(m0.unit_cycles) and unit_price(m0, "dsp_tap") == dict(m0.unit_cycles)["conv_tap"]
    mac, ls, op = dict(atmega.unit_ops)["pool"]
    assert "gap_add" not in dict(atmega.unit_ops)
    assert unit_price(atmega, "gap_add") == mac * c.int_mac + ls * c.load_store + op * c.int_op


@pytest.mark.parametrize("arch, shape", [("conv:4:3,pool:2,dense:10", DIGITS), ("conv:3:3,pool:2,dense:10", DIGITS),
                                         ("conv1d:8:5,pool1d:2,conv1d:16:5,gap,dense:4", ((1, 100, 6), 4, 40))])
@pytest.mark.parametrize("bits", [8, 4, 16])
def test_a_dsp_core_counts_its_paths_under_their_own_units_and_the_same_work(arch, shape, bits):
    m3, m4 = load_target("cortex-m3"), load_target("cortex-m4")
    assert (m3.has_dsp, m4.has_dsp) == (False, True)
    portable, dsp = (fit_for(arch, "sr", bits, 16, shape, t).cost for t in (m3, m4))
    # only names differ: every MAC, op and byte is the same on both cores
    assert dsp.int_macs_per_step == portable.int_macs_per_step and dsp.int_ops_per_step == portable.int_ops_per_step
    assert dsp.buffers == portable.buffers
    for part, units in portable.work.items():
        assert sum(units.values()) == sum(dsp.work[part].values()), part
    units = {u for units in dsp.work.values() for u in units}
    dsp_only = {"dsp_tap", "dsp_mac", "dsp_scan", "dsp_act", "pool_word", "pool_back_word"}
    assert not dsp_only & {u for units in portable.work.values() for u in units}
    # the conv column path: 8-bit slots (16-bit weights take the portable loops), fan-in <= 12, filters in pairs
    assert ("dsp_tap" in units) == (arch.startswith("conv:4:3") and bits <= 8)
    # pooling a word of channels: 4 and 8 channels do, 3 do not
    assert ("pool_word" in units) == (not arch.startswith("conv:3:3"))
    # backward, a word of channels where the windows tile the input, else a 2x2 window written out
    assert ("pool_back_2x2" in units) == arch.startswith("conv:3:3")
    assert ("gap_add" in units) == ("gap" in arch)


def test_the_conv_column_path_is_the_c_runtimes():
    from fxtrain.layers.conv import DSP_COLUMN_TAPS
    passes = (Path(__file__).parents[1] / "firmware_export" / "fx_train_passes.h").read_text()
    # the accounting's choice of path is the runtime's own condition
    assert (f"#define FX_CONV_DSP(L) ((L)->fan_in <= {DSP_COLUMN_TAPS}u && (L)->out_c % 2u == 0u)" in passes)


def test_a_step_pays_its_phases_and_a_share_of_the_shuffle():
    fit = fit_for(None, "sr", 8, 16, DIGITS, load_target("cortex-m4"))
    ph, steps = fit.phase_cycles, fit.cost.steps_per_epoch
    assert steps == 1437 // 16
    assert fit.cycles_per_step == pytest.approx(sum(v for p, v in ph.items() if p != "shuffle") + ph["shuffle"] / steps)
    # the shuffle draws once per sample: one unit each
    assert fit.cost.work["shuffle"] == {"shuffle": 1437}


@pytest.mark.parametrize("target", ["stm32f103c8", "cortex-m4"])
@pytest.mark.parametrize("bits", [1, 4, 8])
def test_sr_fits_a_wider_net_than_bc(target, bits):
    t = load_target(target)
    sr = largest_width(None, "sr", bits, 16, DIGITS, t)
    bc = largest_width(None, "bc", bits, 16, DIGITS, t)
    assert sr > bc > 0
    # the widths are maximal: one more unit no longer fits
    assert fit_for(f"dense:{sr},dense:10", "sr", bits, 16, DIGITS, t).sram_fits
    assert not fit_for(f"dense:{sr + 1},dense:10", "sr", bits, 16, DIGITS, t).sram_fits or \
        not fit_for(f"dense:{sr + 1},dense:10", "sr", bits, 16, DIGITS, t).time_fits


def test_simulate_refuses_atmega328p_and_suggests():
    r = invoke("simulate", "--target", "atmega328p")
    assert r.exit_code == 1
    err = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(err) == 1 and "SRAM" in err[0] and "bytes over" in err[0] and "--target" in err[0]


def test_simulate_suggests_batch_or_width_when_one_fits():
    r = invoke("simulate", "--target", "stm32f103c8", "--arch", "dense:64,dense:10")
    assert r.exit_code == 1 and "--batch " in r.output and "--arch dense:" in r.output


def test_simulate_cortex_m4_runs_and_fits(tmp_path):
    r = invoke("simulate", "--target", "cortex-m4", "--epochs", 3, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert "fits: true" in r.output and "shuffle index" in r.output
    t = json.loads((tmp_path / "report.json").read_text())["target"]
    assert t["name"] == "cortex-m4" and t["memory"]["fits"] is True and t["compute"]["fits"] is True
    assert t["memory"]["total_bytes"] == sum(t["memory"]["buffers"].values())
    assert t["compute"]["float_ops_per_epoch"] == 0 and t["compute"]["int_macs_per_epoch"] > 0


def test_targets_list_and_show():
    r = invoke("targets")
    assert r.exit_code == 0 and "cortex-m4" in r.output and "atmega328p" in r.output
    r = invoke("targets", "show", "cortex-m0plus")
    assert r.exit_code == 0 and "cycles.fadd" in r.output and "source." in r.output


def user_profile(tmp_path, edit=lambda text: text):
    """A user's profile: the shipped cortex-m4 file renamed 'mine', then edited."""
    from fxtrain._files import data_dir
    text = (data_dir("targets") / "cortex-m4.toml").read_text().replace('name = "cortex-m4"', 'name = "mine"')
    p = tmp_path / "mine.toml"
    p.write_text(edit(text))
    return p


@pytest.mark.parametrize("edit,needle", [
    (lambda s: s.replace('fpu = "sp"\n', ""), "fpu"),
    (lambda s: s.replace("sram_bytes = 196608", "sram_bytes = -5"), "sram_bytes"),
    (lambda s: s.replace('fpu = "sp"', 'fpu = "quad"'), "fpu"),
])
def test_bad_profile_files_get_one_line(tmp_path, edit, needle):
    p = user_profile(tmp_path, edit)
    r = invoke("simulate", "--target", p)
    err = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert r.exit_code == 1 and len(err) == 1 and needle in err[0] and "mine.toml" in err[0], r.output


def test_user_profile_and_unknown_target(tmp_path):
    assert invoke("simulate", "--target", user_profile(tmp_path), "--epochs", 1).exit_code == 0
    r = invoke("simulate", "--target", "cortex-m5")
    assert r.exit_code == 1 and "unknown target 'cortex-m5'" in r.output and "Traceback" not in r.output


def test_compare_formats_and_plot(tmp_path):
    r = invoke("compare", "--target", "cortex-m0plus", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    rows = {(x["method"], x["bits"]): x for x in data["rows"]}
    assert rows[("bc", 8)]["shadow_bytes"] == 4 * 2368 and rows[("sr", 8)]["shadow_bytes"] == 0
    assert rows[("bc", 8)]["total_bytes"] - rows[("sr", 8)]["total_bytes"] == 4 * 2368
    assert all(w["sr_width"] > w["bc_width"] for w in data["widths"])
    r = invoke("compare", "--target", "cortex-m0plus", "--format", "csv", "--bits", "1,8")
    assert r.exit_code == 0 and r.output.startswith("method,bits,weight_bytes")
    png = tmp_path / "mem.png"
    r = invoke("compare", "--target", "stm32f103c8", "--bits", "1,8", "--plot", png)
    assert r.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sr width" in r.output


def test_compare_train_reports_accuracy():
    r = invoke("compare", "--target", "cortex-m4", "--bits", "4", "--train", "--epochs", 2, "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]  # the progress bar goes to stderr
    assert all(0.0 <= x["test_accuracy"] <= 1.0 for x in rows)


def test_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path):
    from cli_helpers import hide_module
    hide_module(monkeypatch, "matplotlib")
    r = invoke("compare", "--target", "cortex-m4", "--plot", tmp_path / "x.png")
    assert r.exit_code == 1 and "pip install" in r.output and not (tmp_path / "x.png").exists()


def test_momentum_is_counted_as_optimizer_state():
    layers = parse_arch(None, (8, 8, 1), 10)
    n_w = sum(s.n_weights for s in layers)
    base = account(layers, "bc", 8, 16, 1437, 64, 10)
    mom = account(layers, "bc", 8, 16, 1437, 64, 10, momentum=True)
    assert mom.total_bytes - base.total_bytes == mom.buffers["momentum"] == 4 * n_w
    sr = account(layers, "sr", 8, 16, 1437, 64, 10, momentum=True)
    assert sr.buffers["momentum"] == 2 * n_w and sr.labels["momentum"] == "momentum (int16)"


def test_wide_sums_are_counted_in_bytes_and_cycles():
    layers = parse_arch("conv:8:3,pool:2,dense:10", (28, 28, 1), 10)
    narrow, wide = account(layers, "sr", 8, 195, 5000, 784, 10), account(layers, "sr", 8, 196, 5000, 784, 10)
    # at batch 196 the conv gradient passes int32 (196 * 26 * 26 * 128 * 127 > 2**31 - 1): its MACs go to
    # SMLAL and the gradient buffer doubles; the forward and input-error sums stay int32
    grad_macs = 72 * 26 * 26 + 10 * 1352  # conv 8x3x3 over 26x26 positions, dense 1352 -> 10
    assert narrow.wide_macs_per_step == 0 and wide.wide_macs_per_step == 196 * grad_macs
    assert wide.int_macs_per_step + wide.wide_macs_per_step == 196 * (2 * grad_macs + 10 * 1352)
    assert (narrow.buffers["grad"], wide.buffers["grad"]) == (4 * 1352, 8 * 1352)
    assert (narrow.buffers["gbias"], wide.buffers["gbias"]) == (4 * 10, 8 * 10)
    m0 = load_target("cortex-m0plus")
    fit = fit_for("conv:8:3,pool:2,dense:10", "sr", 8, 196, ((28, 28, 1), 10, 5000), m0)
    c = fit.cost
    assert c.extra["update"]["wide_mac"] == 196 * grad_macs
    update = {k: v for k, v in c.extra["update"].items() if k != "wide_mac"}
    narrow = Fit(replace(c, extra={**c.extra, "update": update}), m0)
    # the int64 MACs pay int_mac_wide (4 on M0+: MULS, ADDS, ADCS, ASRS) over int_mac (2) on top of the fitted unit
    # (equal up to float rounding of the fitted unit prices: 24,379,264.000000015 under the current ones)
    assert fit.phase_cycles["update"] - narrow.phase_cycles["update"] == pytest.approx(196 * grad_macs * (4 - 2),
                                                                                      rel=1e-12)


def test_a_batch_that_is_not_a_power_of_two_pays_wide_multiplies():
    layers = parse_arch(None, (8, 8, 1), 10)
    n_w, n_b = sum(s.n_weights for s in layers), sum(s.n_bias for s in layers)
    # batch 48: alpha/48 has a 24-bit mantissa, so every weight and bias update is a 32x32 -> 64 multiply
    assert account(layers, "sr", 8, 48, 1437, 64, 10, step_m=11_184_811).wide_muls_per_step == n_w + n_b
    assert account(layers, "sr", 8, 16, 1437, 64, 10, step_m=1).wide_muls_per_step == 0
    # bc's weight step is a float multiply; only its integer bias updates are wide
    assert account(layers, "bc", 8, 48, 1437, 64, 10, step_m=11_184_811).wide_muls_per_step == n_b


def test_counters_buffer_matches_the_engine():
    from fxtrain.device.memory import SAT_KINDS
    from fxtrain.engine.requant import N_SAT
    # the accounting's counter rows have as many kinds as the engine counts
    assert SAT_KINDS == N_SAT
