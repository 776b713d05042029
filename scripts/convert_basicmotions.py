"""Convert BasicMotions from the UEA archive's .ts files into fxtrain/data/basicmotions.npz (run once).

    python scripts/convert_basicmotions.py SOURCE [OUT]

SOURCE is the sktime wheel (``pip download sktime --no-deps -d /tmp/sk``), which carries
``sktime/datasets/data/BasicMotions/BasicMotions_TRAIN.ts`` and ``_TEST.ts``, or a folder
holding those two files. OUT defaults to ``fxtrain/data/basicmotions.npz``. The script
prints the sha256 of both sources and of the npz (docs/data.md records them).

The .ts format: comment lines (#) and a header (@name value) up to ``@data``, then one
window per line: the C channels separated by ':', each T values separated by ',', the
class name last. The npz holds ``X_train``, ``X_test`` float64 [40, 100, 6] (windows,
steps, channels: the text's values exactly), ``y_train``, ``y_test`` uint8 and
``classes``: the class names sorted alphabetically, so label i is ``classes[i]``. The
windows keep the archive's order. The zip members get a fixed time stamp, so the same
sources always give the same bytes.
"""
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "sktime/datasets/data/BasicMotions/BasicMotions_{}.ts"
SHAPE = (100, 6)  # steps, channels


def read_source(source, split):
    """The text of the TRAIN or TEST file, from the wheel or a folder."""
    source = Path(source)
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as z:
            return z.read(MEMBER.format(split))
    return (source / f"BasicMotions_{split}.ts").read_bytes()


def parse_ts(text):
    """(header {name: value}, windows float64 [n, T, C], class names [n]) of a .ts file's text."""
    header, rows, names = {}, [], []
    lines = iter(text.decode("ascii").splitlines())
    for line in lines:
        if line.startswith("@data"):
            break
        if line.startswith("@"):
            key, _, value = line[1:].partition(" ")
            header[key.lower()] = value.strip()
    for line in lines:
        if not line.strip():
            continue
        *channels, name = line.strip().split(":")
        rows.append([[float(v) for v in c.split(",")] for c in channels])
        names.append(name)
    X = np.array(rows, dtype=np.float64).transpose(0, 2, 1)  # the file is channel by channel
    steps, channels = int(header["serieslength"]), int(header["dimensions"])
    assert X.shape[1:] == (steps, channels) == SHAPE, X.shape
    assert header["equallength"] == "true" and header["missing"] == "false"
    return header, X, names


def npz_compressed(arrays):
    """A compressed .npz whose bytes depend on the arrays alone (a fixed time stamp on every member)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def main(source, out="fxtrain/data/basicmotions.npz"):
    arrays, classes = {}, None
    for split in ("TRAIN", "TEST"):
        text = read_source(source, split)
        print(f"BasicMotions_{split}.ts  sha256 {hashlib.sha256(text).hexdigest()}")
        header, X, names = parse_ts(text)
        declared = sorted(header["classlabel"].split()[1:])  # "true Standing Running ..."
        classes = classes or declared
        assert declared == classes and set(names) == set(classes), (declared, set(names))
        arrays[f"X_{split.lower()}"] = X
        arrays[f"y_{split.lower()}"] = np.array([classes.index(n) for n in names], np.uint8)
    arrays["classes"] = np.array(classes)
    data = npz_compressed({k: arrays[k] for k in ("X_train", "y_train", "X_test", "y_test", "classes")})
    Path(out).write_bytes(data)
    print(f"{out}  sha256 {hashlib.sha256(data).hexdigest()}  ({len(data):,} bytes)")
    print("classes:", ", ".join(f"{i} {c}" for i, c in enumerate(classes)))


if __name__ == "__main__":
    main(*sys.argv[1:])
