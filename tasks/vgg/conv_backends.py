"""VGG16's conv base as a callable on caffe-preprocessed batches, run by Keras, ONNX Runtime or OpenVINO."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tasks.core.errors import StageError

if TYPE_CHECKING:  # for the hints only: bench/gpu.sh imports this module on a GPU image that lacks pydantic
    from tasks.core.params import Backend, Precision

ConvRunner = Callable[[np.ndarray], np.ndarray]  # (N, H, W, 3) float32 -> (N, 7, 7, 512) float32
# OpenVINO's name for the arithmetic each precision asks for.
OPENVINO_PRECISION = {"float32": "f32", "mixed_bfloat16": "bf16", "mixed_float16": "f16"}
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # what opset 17 needs; newer onnx packages default to IRs that runtimes reject


def make_conv_runner(conv, backend: Backend, precision: Precision, xla: bool) -> ConvRunner:
    """A function running the Keras conv base `conv` on one batch with `backend` at `precision` (xla: Keras only).

    params.py refuses the combinations that can't run (xla off keras, onnxruntime below float32) at load.
    """
    if backend == "keras":
        return _keras_runner(conv, precision, xla)
    if backend == "onnxruntime":
        return _onnxruntime_runner(conv_onnx(conv))
    return _openvino_runner(conv_onnx(conv), OPENVINO_PRECISION[precision])


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
    # Under the JAX backend (GPU hosts whose image has JAX, not TensorFlow) predict is XLA-compiled already.
    if not xla or keras.backend.backend() == "jax":
        return lambda batch: np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    import tensorflow as tf

    compiled = tf.function(lambda batch: model(batch, training=False), jit_compile=True)
    return lambda batch: np.asarray(compiled(tf.constant(batch)), dtype=np.float32)


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
    return lambda batch: session.run(None, {"photos": np.ascontiguousarray(batch, dtype=np.float32)})[0]


def _openvino_runner(graph: bytes, inference_precision: str) -> ConvRunner:
    """OpenVINO on the CPU, tuned for one large request at a time (a batch), at the given arithmetic precision."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(graph, b"")  # ONNX bytes, weights embedded
    compiled = core.compile_model(
        model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": inference_precision}
    )
    request = compiled.create_infer_request()
    return lambda batch: np.array(request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})[0], copy=True)
