"""The heads of train.head, each a small Keras model on what head_inputs gives it, ending in one softmax per class.

Output column i is the probability of class i of the class list (tasks/photos/class_list.py).
"""

from __future__ import annotations

import keras

OUTPUT_LAYER = "classes"  # the softmax over the class list; its name is in no number, only in the saved config


def _new_top(class_count: int) -> keras.layers.Layer:
    return keras.layers.Dense(class_count, activation="softmax", name=OUTPUT_LAYER)


def build_head(head: str, input_shape: tuple[int, ...], vgg: keras.Model, class_count: int) -> keras.Model:
    """The untrained head: Dense(class_count, softmax) alone (linear, last_layer), after fc1+fc2 (dense) or pooling."""
    inputs = keras.Input(input_shape, name="features")
    if head in ("linear", "last_layer"):
        return keras.Model(inputs, _new_top(class_count)(inputs), name=head)
    if head == "conv":
        pooled = keras.layers.GlobalAveragePooling2D()(inputs)
        return keras.Model(inputs, _new_top(class_count)(pooled), name=head)
    if head != "dense":
        raise ValueError(f"unknown head {head!r}")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for name in ("fc1", "fc2"):
        # New layers holding copies of VGG16's weights: training them leaves vgg itself untouched.
        source = vgg.get_layer(name)
        layer = keras.layers.Dense(source.units, activation="relu", name=name)
        x = layer(x)
        layer.set_weights([w.copy() for w in source.get_weights()])
    return keras.Model(inputs, _new_top(class_count)(x), name=head)


def inference_copy(model: keras.Model) -> keras.Model:
    """model's architecture and weights, no optimizer: Adam's state would triple the dense head's 480 MB file."""
    copy = keras.Model.from_config(model.get_config())  # uncompiled, unlike clone_model's copy
    copy.set_weights(model.get_weights())
    return copy
