"""Every int32 accumulator at every shift: fx_runtime.h's "tflm" rule against TFLM's own arithmetic.

A C program sweeps all 2**32 int32 values x for each shift s in 0..31 (for s = 0,
|x| < 2**30, since TFLM doubles x in int32 there) and compares

- ``fx_round_shift_tflm(x, s)`` from ``firmware_export/fx_runtime.h``, the one-line rule, with
- TFLM's path written from its definition: ``QuantizeMultiplier(2**-s)`` (frexp and
  round, as in ``quantization_util.cc``), then ``MultiplyByQuantizedMultiplier``, i.e.
  gemmlowp's ``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT``.

It prints one row per shift: values compared, mismatches, seconds. About 1.4*10^11
comparisons; a few minutes on one core. The CI tests hold the same rule to the same
reference on every boundary class (``tests/test_rounding.py``).

    python benchmarks/bench_tflm_rounding.py            # the whole sweep
    python benchmarks/bench_tflm_rounding.py --quick    # every 4099th value: a smoke test
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware_export"

PROGRAM = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "fx_runtime.h"

/* TFLM's QuantizeMultiplier for a positive double (quantization_util.cc). */
static void quantize_multiplier(double m, int32_t *q, int *shift)
{
    long long q_fixed = llround(frexp(m, shift) * (double)(1LL << 31));
    if (q_fixed == (1LL << 31)) {
        q_fixed /= 2;
        ++*shift;
    }
    if (*shift < -31) {
        *shift = 0;
        q_fixed = 0;
    }
    *q = (int32_t)q_fixed;
}

/* gemmlowp's SaturatingRoundingDoublingHighMul. */
static int32_t srdhm(int32_t a, int32_t b)
{
    int overflow = a == b && a == INT32_MIN;
    int64_t ab = (int64_t)a * (int64_t)b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    int32_t high = (int32_t)((ab + nudge) / ((int64_t)1 << 31));
    return overflow ? INT32_MAX : high;
}

/* gemmlowp's RoundingDivideByPOT. */
static int32_t rdbp(int32_t x, int exponent)
{
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM's MultiplyByQuantizedMultiplier (the two-rounding form, without TFLITE_SINGLE_ROUNDING). */
static int32_t tflm(int32_t x, int32_t q, int shift)
{
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return rdbp(srdhm((int32_t)(x * (1 << left)), q), right);
}

int main(int argc, char **argv)
{
    long long step = argc > 1 ? atoll(argv[1]) : 1;
    int s;
    for (s = 0; s < 32; s++) {
        int32_t q;
        int shift;
        long long x, lo = s == 0 ? -(1LL << 30) + 1 : INT32_MIN, hi = s == 0 ? (1LL << 30) - 1 : INT32_MAX;
        unsigned long long n = 0, bad = 0;
        clock_t t0 = clock();
        quantize_multiplier(ldexp(1.0, -s), &q, &shift);
        for (x = lo; x <= hi; x += step) {
            n++;
            bad += fx_round_shift_tflm((int32_t)x, s) != (int64_t)tflm((int32_t)x, q, shift);
        }
        if (hi % step != 0) { /* the top value always */
            n++;
            bad += fx_round_shift_tflm((int32_t)hi, s) != (int64_t)tflm((int32_t)hi, q, shift);
        }
        printf("%d %ld %d %llu %llu %.2f\n", s, (long)q, shift, n, bad, (double)(clock() - t0) / CLOCKS_PER_SEC);
        fflush(stdout);
    }
    return 0;
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every 4099th value (a smoke test)")
    args = ap.parse_args()
    cc = shutil.which("gcc")
    if cc is None:
        sys.exit("gcc not found: apt-get install gcc")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "sweep.c", Path(tmp) / "sweep"
        src.write_text(PROGRAM)
        subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{FIRMWARE}", str(src), "-o",
                        str(exe), "-lm"], check=True)
        out = subprocess.run([str(exe), "4099" if args.quick else "1"], capture_output=True, text=True,
                             check=True).stdout
    rows = [ln.split() for ln in out.splitlines()]
    table = [[s, q, sh, f"{int(n):,}", bad, f"{float(t):.2f}"] for s, q, sh, n, bad, t in rows]
    print(tabulate(table, headers=["s", "TFLM multiplier", "TFLM shift", "accumulators", "mismatches", "seconds"],
                   tablefmt="github", disable_numparse=True))
    total = sum(int(r[4]) for r in rows)
    print(f"\n{'every' if not args.quick else 'a sample of'} int32 accumulator at every shift: "
          f"{total} mismatches")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
