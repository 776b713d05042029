"""Fine-tuning on the device (``--train-layers N``): what ``PREFIX_train.h`` holds when the layers
under the lowest that trains (``run.low``) are frozen.

Their packed rows (in the slots the kernels read, each row on a word) and their biases are
``const`` arrays, ``PREFIX_frozen_weights`` and ``PREFIX_frozen_biases``, in flash; the RAM
buffers hold the trained layers' alone, and a layer's offsets in the table are into the arrays
that hold it. The trunk's outputs, each read once by the next forward step, share the ping-pong
halves of ``PREFIX_buf_trunk``; from the lowest trained layer's input up, every output keeps its
buffer for the backward pass. A run that trains every layer renders exactly the text it always did.
"""
import math

from ..device.memory import error_width, trunk_halves
from .codegen import c_array


def frozen_counts(run):
    """(weights, biases) of the frozen layers: where the trained layers' start in the net's order."""
    return sum(s.n_weights for s in run.layers[:run.low]), sum(s.n_bias for s in run.layers[:run.low])


def activation_buffers(run, prefix):
    """(declarations, acts[] initialisers): the trunk's halves, then one buffer per kept output."""
    P = prefix.upper()
    halves = trunk_halves(run.layers, run.cfg.batch, run.low)
    text = f"FX_WORD_ALIGNED int8_t {prefix}_buf_trunk[{' + '.join(map(str, halves))}];\n" if halves else ""
    acts = [f"{prefix}_buf_input"]
    for i, s in enumerate(run.layers):
        if i < run.low - 1:  # layer i writes one half and reads the other
            acts.append(f"{prefix}_buf_trunk + {halves[0] if i % 2 else 0}")
            continue
        text += f"FX_WORD_ALIGNED int8_t {prefix}_buf_act{i}[{P}_BATCH * {math.prod(s.out_shape)}];\n"
        acts.append(f"{prefix}_buf_act{i}")
    return text, ", ".join(acts)


def error_widest(run):
    """The widest tensor an error takes, as the accounting sizes the error ping-pong."""
    return error_width(run.layers, run.X.shape[1], run.low)


def frozen_arrays(run, prefix, rows):
    """The frozen layers' packed ``rows`` (uint8) and biases as word-aligned ``const`` arrays ('' if none)."""
    if not run.low:
        return ""
    return (c_array("FX_WORD_ALIGNED uint8_t", f"{prefix}_frozen_weights", rows)
            + c_array("int32_t", f"{prefix}_frozen_biases", run.state.bq[:frozen_counts(run)[1]]))


def frozen_values(run, prefix):
    """The template values that differ with frozen layers: for a run that trains every layer, the text
    the templates always held."""
    P, (n_w, n_b) = prefix.upper(), frozen_counts(run)
    if not run.low:
        return dict(frozen_config="", ram_weights=f"{P}_N_WEIGHTS", ram_biases=f"{P}_N_BIASES", frozen_net="",
                    weight_start="", rows_of_l=f"{prefix}_buf_weights + {prefix}_layer_table[l].w_byte",
                    rows_of_L=f"{prefix}_buf_weights + L->w_byte", bias_at_i=f"{prefix}_buf_biases[i]",
                    bias_of_L=f"{prefix}_buf_biases[L->b_off + j]")
    net = f"&{prefix}_network"
    return dict(
        frozen_config=(f"#define FX_LOW {run.low}\n#define {P}_N_FROZEN_WEIGHTS {n_w}\n"
                       f"#define {P}_N_FROZEN_BIASES {n_b}\n"),
        ram_weights=f"({P}_N_WEIGHTS - {P}_N_FROZEN_WEIGHTS)", ram_biases=f"({P}_N_BIASES - {P}_N_FROZEN_BIASES)",
        frozen_net=f",\n    {prefix}_frozen_weights, {prefix}_frozen_biases",
        weight_start=(f"    if (i >= {P}_N_FROZEN_WEIGHTS) {{ /* a trained layer's: its offsets start after the "
                      f"frozen ones */\n        l = FX_LOW;\n        i -= {P}_N_FROZEN_WEIGHTS;\n    }}\n"),
        rows_of_l=f"fx_layer_w({net}, &{prefix}_layer_table[l])", rows_of_L=f"fx_layer_w({net}, L)",
        bias_at_i=(f"i < {P}_N_FROZEN_BIASES ? {prefix}_frozen_biases[i] "
                   f": {prefix}_buf_biases[i - {P}_N_FROZEN_BIASES]"),
        bias_of_L=f"fx_layer_b({net}, L)[j]")
