"""Custom layers of the zoo, registered serialisable under the package ``diagnostics_zoo``.

Keras stores them as ``"diagnostics_zoo>ClassName"``; :func:`diagnostics_zoo.custom_objects` hands
them to the core's custom-objects hook so that zoo models load without ``--trust``.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "diagnostics_zoo"


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding plus a learned position embedding (as in BERT, Devlin et al., 2019).

    Input: (batch, sequence_length) integer token ids. Output: (batch, sequence_length, embed_dim).
    """

    def __init__(self, vocab_size, sequence_length, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.sequence_length = int(sequence_length)
        self.embed_dim = int(embed_dim)
        self.token_embedding = keras.layers.Embedding(self.vocab_size, self.embed_dim, name="token_embedding")
        self.position_embedding = keras.layers.Embedding(self.sequence_length, self.embed_dim,
                                                         name="position_embedding")

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.position_embedding.build((self.sequence_length,))
        super().build(input_shape)

    def call(self, inputs):
        positions = ops.arange(0, ops.shape(inputs)[-1], dtype="int32")
        return self.token_embedding(inputs) + self.position_embedding(positions)[None, :, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embed_dim,)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "sequence_length": self.sequence_length, "embed_dim": self.embed_dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerEncoder(keras.layers.Layer):
    """One post-norm Transformer encoder block (Vaswani et al., 2017): self-attention and a
    position-wise feed-forward network, each with a residual connection and layer normalisation.

    Input and output: (batch, steps, embed_dim).
    """

    def __init__(self, embed_dim, num_heads, ff_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=self.embed_dim // self.num_heads, dropout=self.dropout,
            name="attention")
        self.ff_hidden = keras.layers.Dense(self.ff_dim, activation="relu", name="ff_hidden")
        self.ff_out = keras.layers.Dense(self.embed_dim, name="ff_out")
        self.norm_attention = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_attention")
        self.norm_ff = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_ff")

    def build(self, input_shape):
        self.attention.build(input_shape, input_shape)
        self.norm_attention.build(input_shape)
        self.ff_hidden.build(input_shape)
        self.ff_out.build(tuple(input_shape[:-1]) + (self.ff_dim,))
        self.norm_ff.build(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        attended = self.attention(inputs, inputs, training=training)
        x = self.norm_attention(inputs + attended)
        return self.norm_ff(x + self.ff_out(self.ff_hidden(x)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout}


CUSTOM_LAYERS = (PositionalEmbedding, TransformerEncoder)
