"""`fxtrain experiment NAME --quick`: each writes its CSV and PNG, and shows a structural fact of its numbers."""
import csv
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from fxtrain.cli import cli
from fxtrain.experiments.sweep import load_record


@pytest.fixture(scope="module")
def run_quick(tmp_path_factory):
    """Run one quick experiment through the CLI (serially), once per module; returns (rows, out, records)."""
    done = {}

    def get(name):
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            res = CliRunner().invoke(cli, ["experiment", name, "--quick", "--out", str(out), "--scheduler", "serial"])
            assert res.exit_code == 0, res.output
            # every experiment states its grid, and writes its CSV and a non-empty PNG
            assert "grid:" in res.output
            assert (out / f"{name}.png").stat().st_size > 1000
            with open(out / f"{name}.csv") as f:
                rows = list(csv.DictReader(f))
            from fxtrain.experiments.report import experiment_module
            recs = [load_record(out, c) for c in experiment_module(name).plan(name, True).cells]
            done[name] = (rows, out, recs, res.output)
        return done[name]
    return get


def test_convex_sr_floor_shrinks_with_the_grid_step(run_quick):
    rows, _, _, output = run_quick("convex")
    assert "not the int8" in output  # says it runs in exact arithmetic, not through the engine
    for problem in ("least-squares", "ridge", "logistic"):
        sr = [r for r in rows if r["problem"] == problem and r["schedule"] == "robbins-monro" and r["weights"] == "sr"]
        floors = [float(r["floor_mean"]) for r in sorted(sr, key=lambda r: -float(r["delta"]))]
        # Delta 2^-2 -> 2^-6: SR's floor at the finest step is below that at the coarsest, by more than 4x
        assert len(floors) == 5 and floors[-1] * 4 < floors[0]
    # BC's real weights w_r are reported only for bc, and float has no grid step
    assert {r["weights"] for r in rows} == {"float", "sr", "r", "bc w_b", "bc w_r"}
    assert {r["delta"] for r in rows if r["weights"] == "float"} == {"0.0"}
    # F* is the minimum over the box: no iterate, averaged or not, of any chain goes below it
    assert all(float(r["avg_floor_mean"]) > 0 and float(r["floor_mean"]) > 0 for r in rows)


def _log_slope(pts):
    """Least-squares slope of log2(floor) on log2(Delta) over (Delta, floor) pairs."""
    x, y = np.log2([p[0] for p in pts]), np.log2([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def test_convex_logistic_sr_floor_is_first_order_in_delta_and_bc_stays_below(run_quick):
    rows, _, _, output = run_quick("convex")
    logi = [r for r in rows if r["problem"] == "logistic"]
    # the non-quadratic problem is there, with a Hessian that moves (L2 > 0), and the quadratics' L2 is 0
    assert logi and all(float(r["L2"]) > 0 for r in logi)
    assert all(float(r["L2"]) == 0 for r in rows if r["problem"] != "logistic")
    for sched in ("theorem", "robbins-monro"):
        sr = {float(r["delta"]): float(r["avg_floor_mean"]) for r in logi
              if r["schedule"] == sched and r["weights"] == "sr"}
        wr = {float(r["delta"]): float(r["avg_floor_mean"]) for r in logi
              if r["schedule"] == sched and r["weights"] == "bc w_r"}
        assert len(sr) == 5 and set(wr) == set(sr)
        # at every Delta, BC's real weights end no higher than SR's weights (both at the averaged iterate)
        assert all(wr[d] <= sr[d] for d in sr), (sched, sr, wr)
        print(f"logistic {sched}: SR slope {_log_slope(sr.items()):.2f}, BC w_r slope {_log_slope(wr.items()):.2f}")
    # under the theorem's own rate, SR's floor at w_bar_T is first order in Delta, as its sqrt(d) Delta G / 2 term
    sr = [(float(r["delta"]), float(r["avg_floor_mean"])) for r in logi
          if r["schedule"] == "theorem" and r["weights"] == "sr"]
    assert 0.8 <= _log_slope(sr) <= 1.25
    # the slopes table reports BC's own slope (not asserted: that is the measurement)
    assert "| logistic      | theorem       | bc w_r" in output


def test_anneal_bc_changes_die_out_where_sr_keeps_moving(run_quick):
    rows, _, recs, output = run_quick("anneal")
    share = {(r["method"], int(r["bits"]), r["schedule"], int(r["epoch"])): float(r["changed_fraction"])
             for r in rows}
    last = max(k[3] for k in share)
    rm = next(r for r in recs if r["cell"]["method"] == "bc" and r["cell"]["bits"] == 8 and r["cell"]["lr_decay_tau"])
    # the rate did decay inside the run, and the CSV holds the records' own per-epoch shares
    assert float(rm["report"]["history"][-1]["lr"]) < float(rm["report"]["history"][0]["lr"]) / 4
    assert [share[("bc", 8, "robbins-monro", e)] for e in range(1, last + 1)] == \
        [h["changed_fraction"] for h in rm["report"]["history"]]
    # under the decaying rate, BC's changes die out: fewer in the last epoch than in the first, and fewer than SR's
    bc_first, bc_last = share[("bc", 8, "robbins-monro", 1)], share[("bc", 8, "robbins-monro", last)]
    assert bc_last < bc_first and bc_last < share[("sr", 8, "robbins-monro", last)]
    assert "8-bit, robbins-monro: changed share last/first" in output


def test_lr_sweep_r_changes_nothing_once_the_step_is_below_half_a_grid_step(run_quick):
    rows, _, recs, _ = run_quick("lr-sweep")
    tiny = [r for r in rows if float(r["step_over_delta"]) < 0.5 / 8]  # well below 1/2: the estimate's margin
    assert tiny
    for lr in {r["lr"] for r in tiny}:
        # r: not one weight changed in any epoch; sr at the same rate still moves weights
        r_hist = [h for rec in recs if rec["cell"]["method"] == "r" and rec["cell"]["lr"] == lr
                  for h in rec["report"]["history"]]
        sr_hist = [h for rec in recs if rec["cell"]["method"] == "sr" and rec["cell"]["lr"] == lr
                   for h in rec["report"]["history"]]
        assert r_hist and all(h["changed_fraction"] == 0 for h in r_hist)
        assert all(h["changed_fraction"] > 0 for h in sr_hist)


def test_weight_change_sr_moves_more_weights_on_a_finer_grid(run_quick):
    rows, _, recs, _ = run_quick("weight-change")
    share = {(r["method"], int(r["bits"]), int(r["epoch"])): float(r["changed_fraction_mean"]) for r in rows}
    # a weight moves when alpha*|g| crosses a grid step, so a finer grid (8 bits) moves more of them, every epoch
    assert all(share[("sr", 8, e)] > share[("sr", 2, e)] for e in (1, 2, 3))
    # the CSV holds the records' own per-epoch shares (one seed in quick mode)
    rec = next(r for r in recs if r["cell"]["method"] == "bc" and r["cell"]["bits"] == 2)
    assert [share[("bc", 2, e)] for e in (1, 2, 3)] == [h["changed_fraction"] for h in rec["report"]["history"]]


def test_batch_same_steps_table_matches_the_step_count(run_quick):
    rows, _, recs, _ = run_quick("batch")
    n = 1438  # digits training samples (the per-class split is the same for every seed)
    same_steps = [r for r in rows if r["regime"] == "same steps"]
    target = int(same_steps[0]["steps"])
    for r in same_steps:
        b, epochs = int(r["batch"]), int(r["epochs"])
        # enough epochs to reach the smallest batch's step count, and not one more
        assert epochs * (n // b) >= target > (epochs - 1) * (n // b)
    assert {int(r["epochs"]) for r in rows if r["regime"] == "same epochs"} == {2}
    # each recorded run trained the epochs its row claims
    assert all(len(r["report"]["history"]) == r["cell"]["epochs"] for r in recs)


def test_bits_r_freezes_on_a_coarse_grid_where_sr_moves(run_quick):
    rows, _, recs, _ = run_quick("bits")
    def hist(method):
        return [h for rec in recs if rec["cell"]["method"] == method and rec["cell"]["bits"] == 2
                for h in rec["report"]["history"]]
    r2, sr2 = hist("r"), hist("sr")
    # at 2 bits alpha*|g| < Delta/2 for every weight: R never changes one; SR does in every epoch
    assert all(h["changed_fraction"] == 0 for h in r2) and all(h["changed_fraction"] > 0 for h in sr2)
    assert {r["bits"] for r in rows if r["method"] == "float"} == {"f32"}
    assert {r["arch"] for r in rows} == {"mlp", "conv"}


def test_optimizer_robbins_monro_rates_are_exact_device_rates(run_quick):
    rows, _, recs, output = run_quick("optimizer")
    rm = next(r for r in recs if r["cell"]["lr_decay_tau"] == 10 and r["cell"]["method"] == "bc")
    from fxtrain.training.config import parse_lr
    for epoch, h in enumerate(rm["report"]["history"]):
        m, k = parse_lr(h["lr"])  # representable as m*2^-k with a 16-bit m
        exact = Fraction(1, 16) / (1 + Fraction(epoch, 10))
        # the nearest such value: within half a unit of m's last place (m >= 2^15 unless exact)
        assert abs(Fraction(m, 2**k) - exact) <= exact / 2**16
        assert h["lr"] in output
    adam = next(r for r in recs if r["cell"]["optimizer"] == "adam")
    assert adam["status"] == "ok" and {r["variant"] for r in rows} >= {"bc adam", "sr momentum 0.875"}


def test_runtime_soft_float_costs_bc_more_on_a_core_without_fpu(run_quick):
    rows, _, _, output = run_quick("runtime")
    assert "estimated, cost model" in output and "ESTIMATES" in output
    est = {(r["arch"], r["method"]): r for r in rows}

    def ratio(core):
        col = f"{core} s/epoch (estimated, cost model)"
        return float(est[("mlp", "bc")][col]) / float(est[("mlp", "sr")][col])
    # bc's float update is priced as soft-float on the M0+ (no FPU) and as hardware on the M4
    assert ratio("cortex-m0plus") > 2 * ratio("cortex-m4")
    assert all(float(r["simulator s/epoch (measured)"]) > 0 for r in rows)


def test_adapt_fine_tuning_recovers_the_second_sensor_and_a_frozen_trunk_is_cheaper(run_quick):
    rows, _, recs, output = run_quick("adapt")
    assert "shifted 1 pixel right" in output and "no flash wait states" in output
    by = {(r["method"], r["bits"], r["train"]): r for r in rows}
    assert set(by) == {(m, b, t) for m, b in (("sr", "8"), ("r", "8"), ("bc", "8"), ("float", "f32"))
                       for t in ("last 1", "all 3")}
    for key in [("float", "f32", "last 1"), ("float", "f32", "all 3"), ("sr", "8", "last 1"), ("sr", "8", "all 3")]:
        assert float(by[key]["after mean"]) > float(by[key]["before mean"]) + 0.2, key
    for m in ("sr", "r", "bc"):
        last, full = by[(m, "8", "last 1")], by[(m, "8", "all 3")]
        # the frozen trunk's weights leave SRAM for flash, and its backward pass is not run
        assert int(last["sram_bytes"]) + int(last["sram_saved_bytes"]) == int(full["sram_bytes"])
        assert int(last["sram_saved_bytes"]) > 0 and int(full["sram_saved_bytes"]) == 0
        for t in ("cortex-m0plus", "cortex-m4"):
            assert 0 < float(last[f"{t} cycles/sample"]) < float(full[f"{t} cycles/sample"]), (m, t)
    assert all(r[f"{t} cycles/sample"] == "" for r in rows if r["method"] == "float" for t in ("cortex-m0plus",))
    # the second sensor reads brighter than the first: values above the source's scale saturate, and are counted
    assert all(int(r["saturated"]) > 0 for r in rows)
    assert all(rec["status"] == "ok" and rec["report"]["measure_error"] is None for rec in recs)
