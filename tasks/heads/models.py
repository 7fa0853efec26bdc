"""The heads of train.head, each a small Keras model on what head_inputs gives it; column 1 of its output is P(dog)."""

from __future__ import annotations

import keras


def _new_top() -> keras.layers.Layer:
    return keras.layers.Dense(2, activation="softmax", name="cats_dogs")


def build_head(head: str, input_shape: tuple[int, ...], vgg: keras.Model) -> keras.Model:
    """The untrained head: linear/last_layer a new Dense(2); dense fc1+fc2 from vgg plus it; conv pooling plus it."""
    inputs = keras.Input(input_shape, name="features")
    if head in ("linear", "last_layer"):
        return keras.Model(inputs, _new_top()(inputs), name=head)
    if head == "conv":
        return keras.Model(inputs, _new_top()(keras.layers.GlobalAveragePooling2D()(inputs)), name=head)
    if head != "dense":
        raise ValueError(f"unknown head {head!r}")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for name in ("fc1", "fc2"):
        # New layers holding copies of VGG16's weights: training them leaves vgg itself untouched.
        source = vgg.get_layer(name)
        layer = keras.layers.Dense(source.units, activation="relu", name=name)
        x = layer(x)
        layer.set_weights([w.copy() for w in source.get_weights()])
    return keras.Model(inputs, _new_top()(x), name=head)


def inference_copy(model: keras.Model) -> keras.Model:
    """model's architecture and weights, no optimizer: Adam's state would triple the dense head's 480 MB file."""
    copy = keras.Model.from_config(model.get_config())  # uncompiled, unlike clone_model's copy
    copy.set_weights(model.get_weights())
    return copy
