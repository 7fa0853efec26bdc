"""VGG16's conv base as a callable on caffe-preprocessed batches, run by Keras, ONNX Runtime or OpenVINO."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tasks.core.errors import StageError

if TYPE_CHECKING:  # for the hints only: bench/gpu.sh imports this module on a GPU image that lacks pydantic
    from tasks.core.params import Backend, Precision

# OpenVINO's name for the arithmetic each precision asks for.
OPENVINO_PRECISION = {"float32": "f32", "mixed_bfloat16": "bf16", "mixed_float16": "f16"}
# A runtime's name for the arithmetic it runs (OpenVINO's element type, Keras' compute dtype) -> features.precision's.
PRECISION_OF = {
    "f32": "float32",
    "bf16": "mixed_bfloat16",
    "f16": "mixed_float16",
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}


@dataclass(frozen=True)
class ConvRunner:
    """The conv base on one batch, (N, H, W, 3) float32 -> (N, *cut) float32, and the precision it really runs at.

    precision_used is the runtime's own answer, which can differ from features.precision: OpenVINO runs float32
    where the CPU can't run its bf16 or f16 kernels, and says nothing unless asked.
    """

    run: Callable[[np.ndarray], np.ndarray]
    precision_used: Precision

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)


def precision_warning(backend: Backend, asked: Precision, used: Precision) -> str | None:
    """One line saying the runtime did not run features.precision; None when it runs what was asked."""
    if used == asked:
        return None
    return (
        f"warning: features.precision is {asked} but {backend} runs {used} on this CPU, which lacks the instructions "
        f"for {asked}; the features are {used} ones (recorded as precision_used): set features.precision to {used} "
        "to ask for what runs"
    )


# What each backend besides Keras imports, installed by the extra of the backend's name (pyproject.toml): make run's
# environment has Keras only, make test's every backend.
BACKEND_MODULES = {"onnxruntime": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino")}


def require_backend(backend: Backend) -> None:
    """Refuse a backend whose runtime is not installed, in one line naming its extra and the command that adds it."""
    missing = [name for name in BACKEND_MODULES.get(backend, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise StageError(
            f"features.backend is {backend}, but this environment lacks {' and '.join(missing)}: install the "
            f"{backend} extra with `uv sync --inexact --no-dev --extra {backend}` "
            "(make test's environment has every backend)"
        )


ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # what opset 17 needs; newer onnx packages default to IRs that runtimes reject


def make_conv_runner(conv, backend: Backend, precision: Precision, xla: bool) -> ConvRunner:
    """A function running the Keras conv base `conv` on one batch with `backend` at `precision` (xla: Keras only).

    params.py refuses the combinations that can't run (xla off keras, onnxruntime below float32) at load.
    """
    require_backend(backend)
    if backend == "keras":
        return _keras_runner(conv, precision, xla)
    if backend == "onnxruntime":
        return _onnxruntime_runner(conv_onnx(conv))
    return openvino_runner(conv_onnx(conv), precision)


def _with_policy(conv, precision: str):
    """The same conv base rebuilt layer by layer under a Keras mixed-precision policy, sharing its weights' values."""
    import keras

    x = inputs = keras.Input(conv.input_shape[1:], name="photos")
    for layer in conv.layers[1:]:
        clone = layer.__class__.from_config({**layer.get_config(), "dtype": precision})
        x = clone(x)
        clone.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=f"{conv.name}_{precision}")


def _keras_runner(conv, precision: str, xla: bool) -> ConvRunner:
    """predict_on_batch, or a compiled call when XLA is asked for."""
    import keras

    model = conv if precision == "float32" else _with_policy(conv, precision)
    # What Keras computes in: its layers cast inputs and weights to this dtype, so the features carry its rounding
    # whether the CPU has bf16 instructions or emulates them.
    used = PRECISION_OF[model.layers[-1].compute_dtype]
    # Under the JAX backend (GPU hosts whose image has JAX, not TensorFlow) predict is XLA-compiled already.
    if not xla or keras.backend.backend() == "jax":
        return ConvRunner(lambda batch: np.asarray(model.predict_on_batch(batch), dtype=np.float32), used)
    import tensorflow as tf

    compiled = tf.function(lambda batch: model(batch, training=False), jit_compile=True)
    return ConvRunner(lambda batch: np.asarray(compiled(tf.constant(batch)), dtype=np.float32), used)


def conv_onnx(conv) -> bytes:
    """The conv base as an ONNX graph (NHWC in and out, NCHW inside), built from the Keras layers' own weights.

    VGG16's conv base is only 3x3 same-padded ReLU convolutions and 2x2 max pools, so writing the graph
    directly is short and exact, and needs no TensorFlow-to-ONNX converter that lags behind Keras 3.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Transpose", ["photos"], ["x0"], perm=[0, 3, 1, 2])]
    weights, current = [], "x0"
    for i, layer in enumerate(conv.layers[1:], start=1):
        kind, out = type(layer).__name__, f"x{i}"
        if kind == "Conv2D":
            config = layer.get_config()
            if config["padding"] != "same" or config["activation"] != "relu" or tuple(config["strides"]) != (1, 1):
                raise StageError(
                    f"layer {layer.name} is not a same-padded ReLU conv; the ONNX export supports only VGG16"
                )
            kernel, bias = layer.get_weights()
            weights += [
                numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).astype(np.float32), f"{layer.name}_w"),
                numpy_helper.from_array(bias.astype(np.float32), f"{layer.name}_b"),
            ]
            k = kernel.shape[0]
            nodes.append(
                helper.make_node(
                    "Conv",
                    [current, f"{layer.name}_w", f"{layer.name}_b"],
                    [f"{out}c"],
                    kernel_shape=[k, k],
                    pads=[k // 2] * 4,
                )
            )
            nodes.append(helper.make_node("Relu", [f"{out}c"], [out]))
        elif kind == "MaxPooling2D":
            size, strides = layer.get_config()["pool_size"], layer.get_config()["strides"]
            nodes.append(helper.make_node("MaxPool", [current], [out], kernel_shape=list(size), strides=list(strides)))
        else:
            raise StageError(
                f"layer {layer.name} ({kind}) has no ONNX export; the ONNX backends support VGG16's conv base"
            )
        current = out
    nodes.append(helper.make_node("Transpose", [current], ["pool5"], perm=[0, 2, 3, 1]))
    height, width, channels = conv.input_shape[1:]
    graph = helper.make_graph(
        nodes,
        "vgg16_conv_base",
        [helper.make_tensor_value_info("photos", TensorProto.FLOAT, ["batch", height, width, channels])],
        [helper.make_tensor_value_info("pool5", TensorProto.FLOAT, ["batch", *conv.output_shape[1:]])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=ONNX_IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _onnxruntime_runner(graph: bytes) -> ConvRunner:
    """An ONNX Runtime CPU session with every graph optimisation on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    # float32 only: params.py refuses another precision for onnxruntime at load
    return ConvRunner(
        lambda batch: session.run(None, {"photos": np.ascontiguousarray(batch, dtype=np.float32)})[0], "float32"
    )


def openvino_runner(graph: bytes, precision: Precision) -> ConvRunner:
    """OpenVINO on the CPU, tuned for one large request at a time (a batch), asked to run at precision.

    The precision is a hint: OpenVINO runs bf16 only where its CPU plugin has the kernels (AVX-512 or AVX2-VNNI-2)
    and f16 only with AVX-512 FP16 or AVX2-VNNI-2 (else its default: bf16 where it can, float32 where not),
    silently; the compiled model says what it chose.
    """
    import openvino as ov

    core = ov.Core()
    model = core.read_model(graph, b"")  # ONNX bytes, weights embedded
    compiled = core.compile_model(
        model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision]}
    )
    used = PRECISION_OF[compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()]
    request = compiled.create_infer_request()
    return ConvRunner(
        lambda batch: np.array(request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})[0], copy=True), used
    )
