"""The authors' Keras FaceChannel Dim on TensorFlow 2.15: checked against the fixture, then timed.

Runs ONLY in the throwaway venv made by `benchmarks/peers/setup.sh tf` (TensorFlow is never a project
dependency); `benchmarks/va_throughput.py` starts it and reads one JSON line from stdout.

The network is the original `getDimensionalModel`, built channels_last because TensorFlow's CPU
max-pooling only supports NHWC. Weights are loaded from the same `.h5` by layer name: conv kernels
(kh, kw, in, out) and BatchNorm vectors do not depend on the data format, and Keras' channels_first
Flatten already flattened in (H, W, C) order, which is what a channels_last Flatten does — so the dense
kernel is used unchanged. The outputs are compared with the fixture's Keras outputs before any timing.

    .venvs/tf215/bin/python benchmarks/peers/keras_facechannel.py --weights W.h5 --inputs X.npy \
        --expected Y.npy [--seconds 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONVS = [("Vision_conv1", 64), ("Vision_conv2", 64), ("Vision_conv3", 128), ("Vision_conv4", 128),
         ("Vision_conv5", 128), ("Vision_conv6", 128), ("Vision_conv7", 128), ("Vision_conv8", 256), ("conv9", 256)]
POOL_AFTER = {"Vision_conv2", "Vision_conv4", "Vision_conv7"}


def build(tf, epsilon: float):  # noqa: ANN001, ANN201 - tf is imported late, in the peer's venv only
    layers = tf.keras.layers
    inputs = layers.Input(shape=(64, 64, 1), name="Vision_Network_Input")
    x = inputs
    for i, (name, filters) in enumerate(CONVS):
        x = layers.Conv2D(filters, (3, 3), padding="same", name=name)(x)
        # The file's BatchNormalization names (Keras 2.15 numbering); load_weights matches by name.
        x = layers.BatchNormalization(epsilon=epsilon, name="batch_normalization" + (f"_{i}" if i else ""))(x)
        x = layers.Activation("relu")(x)
        if name in POOL_AFTER:
            x = layers.MaxPooling2D((2, 2))(x)  # the Dropout layers are identities at inference
    excite = layers.Conv2D(256, (3, 3), padding="same", activation="relu", name="conv10")(x)
    inhibit = layers.Conv2D(256, (3, 3), padding="same", activation="relu", name="conv10_inhibition")(x)
    x = layers.Lambda(lambda t: t[0] / (0.5 + t[1]))([excite, inhibit])  # the shunting inhibition
    x = layers.Flatten()(layers.MaxPooling2D((2, 2))(x))
    hidden = layers.Dense(200, activation="relu", name="denseLayer")(x)
    arousal = layers.Dense(1, activation="tanh", name="arousal_output")(hidden)
    valence = layers.Dense(1, activation="tanh", name="valence_output")(hidden)
    return tf.keras.Model(inputs, layers.Concatenate()([arousal, valence]))


def rate(run, items: int, seconds: float) -> float:  # noqa: ANN001
    run()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        count += items
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="FaceChannel Dim Keras .h5 (full model file).")
    parser.add_argument("--inputs", required=True, help="(N, 1, 64, 64) float32 .npy faces.")
    parser.add_argument("--expected", required=True, help="(N, 2) Keras outputs (arousal, valence) to check against.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Measuring time per variant.")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="TensorFlow intra-op threads.")
    args = parser.parse_args()

    import h5py
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with h5py.File(args.weights, "r") as handle:
        config = json.loads(handle.attrs["model_config"])
    epsilons = {layer["config"]["epsilon"] for layer in config["config"]["layers"]
                if layer["class_name"] == "BatchNormalization"}
    model = build(tf, epsilons.pop())
    model.load_weights(args.weights, by_name=True)
    faces = np.load(args.inputs).transpose(0, 2, 3, 1)  # NCHW fixture -> NHWC
    expected = np.load(args.expected)
    diff = float(np.abs(model.predict(faces, verbose=0) - expected).max())
    result = {"tensorflow": tf.__version__, "check_max_abs_diff": diff, "threads": args.threads}
    if diff > 1e-4:
        result["error"] = "outputs differ from the fixture's Keras outputs; not timed"
        print(json.dumps(result))
        return 1

    batch32 = np.concatenate([faces] * 4)[:32]
    singles = [faces[i:i + 1] for i in range(len(faces))]
    graph = tf.function(lambda x: model(x, training=False))
    result.update({
        "predict_b1": rate(lambda: [model.predict(f, verbose=0) for f in singles], len(singles), args.seconds),
        "predict_b32": rate(lambda: model.predict(batch32, verbose=0), 32, args.seconds),
        "function_b1": rate(lambda: [graph(tf.constant(f)).numpy() for f in singles], len(singles), args.seconds),
        "function_b32": rate(lambda: graph(tf.constant(batch32)).numpy(), 32, args.seconds),
    })
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
