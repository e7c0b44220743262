"""Keras 3 layers that accept the keys Keras 2 (``tf.keras``) wrote into their configs.

Imported only when a model is loaded (the ``keras2_compat`` plugin registers them by import path).
Each class keeps its Keras name, so analyzers that look at ``type(layer).__name__`` see a plain
``LSTM`` or ``DepthwiseConv2D``; only ``from_config`` differs.
"""

from __future__ import annotations

import keras


def _drop_time_major(cls_name: str, config: dict) -> dict:
    config = dict(config)
    if config.pop("time_major", False):
        # Keras 3 has no time-major recurrent layers; silently dropping the flag would transpose the data.
        raise ValueError(f"this Keras 2 {cls_name} was saved with time_major=True, which Keras 3 does not support: "
                         f"re-save it with time_major=False (inputs shaped (batch, time, features))")
    return config


class LSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` that accepts Keras 2's ``time_major=False``."""

    @classmethod
    def from_config(cls, config):
        return super().from_config(_drop_time_major("LSTM", config))


class GRU(keras.layers.GRU):
    """``keras.layers.GRU`` that accepts Keras 2's ``time_major=False``."""

    @classmethod
    def from_config(cls, config):
        return super().from_config(_drop_time_major("GRU", config))


class SimpleRNN(keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN`` that accepts Keras 2's ``time_major=False``."""

    @classmethod
    def from_config(cls, config):
        return super().from_config(_drop_time_major("SimpleRNN", config))


class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` that accepts Keras 2's ``groups=1`` (inherited from Conv2D's config)."""

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        groups = config.pop("groups", 1)
        if groups != 1:
            raise ValueError(f"this Keras 2 DepthwiseConv2D has groups={groups}, which a depthwise convolution cannot have")
        return super().from_config(config)
