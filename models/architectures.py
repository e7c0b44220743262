"""Model definitions of the zoo: ``keras.layers`` and ``keras.ops`` only, so any backend runs them.

Each ``build_*`` function returns an *uncompiled* functional model; :mod:`diagnostics_zoo.train`
compiles and trains it. The planted-fault twins are built here too, with the fault's cause visible
in the arguments (initialisers, activations, depth), not hidden in training code.
"""

from __future__ import annotations

import keras
from keras import layers

from . import datasets as ds
from .layers import PositionalEmbedding, TransformerEncoder

LATENT_DIM = 32
IMAGE_SHAPE = (ds.DIGITS_SIZE, ds.DIGITS_SIZE, 1)


def build_cnn(name="cnn", dense_units=64, kernel_initializer="he_uniform"):
    """The classic Keras MNIST convnet: conv 32 -> pool -> conv 64 -> pool -> conv 64 -> dense 64 -> softmax 10.

    The ReLU layers use He initialisation (He et al., 2015): with Glorot's default a third of the
    dense layer's units end up never firing on the digits, enough for a dead-unit warning.
    """
    relu = {"activation": "relu", "kernel_initializer": kernel_initializer}
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Conv2D(32, 3, name="conv1", **relu)(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, name="conv2", **relu)(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(64, 3, name="conv3", **relu)(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, name="dense", **relu)(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def build_cnn_overfit(name="cnn_overfit"):
    """The same convnet with a wider dense layer, Keras' default Glorot initialisation and no
    regularisation (no dropout, no weight decay, no augmentation)."""
    return build_cnn(name=name, dense_units=128, kernel_initializer="glorot_uniform")


def build_cnn_dead_relu(name="cnn_dead_relu"):
    """The convnet with Keras' default Glorot initialisation: its fault comes from training (a
    learning rate 15x too high kills its ReLUs)."""
    return build_cnn(name=name, kernel_initializer="glorot_uniform")


def build_mlp(name="mlp", n_features=30, hidden=(32, 16), activation="relu", kernel_initializer="glorot_uniform",
              output="sigmoid"):
    """Dense layers on a feature table. ``output``: ``"sigmoid"`` (1 unit) or ``"softmax"`` (2 units)."""
    inputs = keras.Input((n_features,), name="features")
    x = inputs
    for i, units in enumerate(hidden):
        x = layers.Dense(units, activation=activation, kernel_initializer=kernel_initializer, name=f"dense{i + 1}")(x)
    if output == "sigmoid":
        outputs = layers.Dense(1, activation="sigmoid", name="prob")(x)
    else:
        outputs = layers.Dense(2, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def build_mlp_vanishing(name="mlp_vanishing", depth=12):
    """A deep, narrow sigmoid network without normalisation or skip connections: each sigmoid
    multiplies the backward signal by at most 0.25, so the first layers barely receive a gradient."""
    return build_mlp(name=name, hidden=(16,) * depth, activation="sigmoid")


def build_mlp_saturated(name="mlp_saturated"):
    """tanh layers with weights drawn about 15x too large (normal, std 2.0 for 30-64 inputs, where
    Glorot gives ~0.15): the pre-activations land far out on the flat tails, where tanh is +-1 and
    its derivative is ~0."""
    return build_mlp(name=name, hidden=(64, 64), activation="tanh",
                     kernel_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=7))


def build_mlp_logits(name="mlp_logits"):
    """A two-unit softmax head; the fault is in compilation (``from_logits=True`` on probabilities)."""
    return build_mlp(name=name, output="softmax")


def build_lstm(name="lstm", units=32):
    """Two stacked LSTMs over (50 steps, 4 channels), softmax over the three motif classes."""
    inputs = keras.Input((ds.MOTIF_STEPS, ds.MOTIF_CHANNELS), name="sequence")
    x = layers.LSTM(units, return_sequences=True, name="lstm1")(inputs)
    x = layers.LSTM(units, name="lstm2")(x)
    outputs = layers.Dense(ds.MOTIF_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def build_lstm_exploding(name="lstm_exploding", units=32):
    """An LSTM whose cell activation is ReLU (unbounded) and whose recurrent kernel starts at
    normal(std 0.5), about three times the scale of the orthogonal default (entries ~0.18 for 32
    units): the state, and with it the backward signal, grows geometrically over the 50 steps."""
    inputs = keras.Input((ds.MOTIF_STEPS, ds.MOTIF_CHANNELS), name="sequence")
    x = layers.LSTM(units, activation="relu",
                    recurrent_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=11),
                    unit_forget_bias=True, name="lstm1")(inputs)
    outputs = layers.Dense(ds.MOTIF_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def build_transformer(name="transformer", embed_dim=32, num_heads=2, ff_dim=64):
    """Token + position embedding, one self-attention encoder block, mean pooling, sigmoid."""
    inputs = keras.Input((ds.TOKEN_SEQ_LEN,), dtype="int32", name="tokens")
    x = PositionalEmbedding(ds.TOKEN_VOCAB, ds.TOKEN_SEQ_LEN, embed_dim, name="embedding")(inputs)
    x = TransformerEncoder(embed_dim, num_heads, ff_dim, name="encoder")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="prob")(x)
    return keras.Model(inputs, outputs, name=name)


def build_generator(name="gan", latent_dim=LATENT_DIM):
    """DCGAN-style generator (Radford et al., 2016): latent (32,) -> 7x7x64 -> 14x14x64 -> 28x28x1 in [0, 1]."""
    inputs = keras.Input((latent_dim,), name="latent")
    x = layers.Dense(7 * 7 * 64, name="project")(inputs)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.LeakyReLU(0.2, name="project_act")(x)
    x = layers.Reshape((7, 7, 64), name="reshape")(x)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same", name="up1")(x)
    x = layers.BatchNormalization(name="up1_bn")(x)
    x = layers.LeakyReLU(0.2, name="up1_act")(x)
    x = layers.Conv2DTranspose(32, 4, strides=2, padding="same", name="up2")(x)
    x = layers.BatchNormalization(name="up2_bn")(x)
    x = layers.LeakyReLU(0.2, name="up2_act")(x)
    outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="image")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(name="gan_discriminator"):
    """DCGAN-style discriminator: 28x28x1 -> strided convs -> probability that the image is real."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Conv2D(32, 4, strides=2, padding="same", name="conv1")(inputs)
    x = layers.LeakyReLU(0.2, name="conv1_act")(x)
    x = layers.Conv2D(64, 4, strides=2, padding="same", name="conv2")(x)
    x = layers.LeakyReLU(0.2, name="conv2_act")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="real_prob")(x)
    return keras.Model(inputs, outputs, name=name)


def build_rnn_vanishing(name="rnn_vanishing", units=16, depth=3):
    """Three stacked ``SimpleRNN`` layers (tanh, Keras' defaults) over the 120-step early-signal task:
    the backward signal is multiplied by tanh' x the recurrent kernel at every step, so by the time it
    reaches the first steps, where the label is decided, it is ~1e-8 of what the last steps get."""
    inputs = keras.Input((ds.EARLY_STEPS, 1), name="sequence")
    x = inputs
    for i in range(depth):
        x = layers.SimpleRNN(units, return_sequences=i < depth - 1, name=f"rnn{i + 1}")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="prob")(x)
    return keras.Model(inputs, outputs, name=name)


def build_cnn_small(name="cnn_shortcut", classes=2):
    """A small convnet (conv 8, pool, conv 16, pool, softmax) for the marked-digits task."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


#: Builder of every shipped artifact stem (zoo entries and the GANs' discriminators).
BUILDERS = {
    "cnn": build_cnn,
    "mlp": build_mlp,
    "lstm": build_lstm,
    "transformer": build_transformer,
    "gan": build_generator,
    "gan_discriminator": build_discriminator,
    "cnn_overfit": build_cnn_overfit,
    "cnn_dead_relu": build_cnn_dead_relu,
    "mlp_vanishing": build_mlp_vanishing,
    "mlp_saturated": build_mlp_saturated,
    "mlp_logits": build_mlp_logits,
    "mlp_nan": lambda: build_mlp(name="mlp_nan"),
    "lstm_exploding": build_lstm_exploding,
    "gan_collapsed": lambda: build_generator(name="gan_collapsed"),
    "gan_collapsed_discriminator": lambda: build_discriminator(name="gan_collapsed_discriminator"),
    "mlp_regression": lambda: build_mlp_regression(),  # defined below
    "rnn_vanishing": build_rnn_vanishing,
    "mlp_chance": lambda: build_mlp(name="mlp_chance"),
    "cnn_shortcut": build_cnn_small,
    "mlp_leak": lambda: build_mlp(name="mlp_leak", n_features=31),
    "mlp_shift": lambda: build_mlp(name="mlp_shift"),
    "mlp_label_copy": lambda: build_mlp(name="mlp_label_copy", n_features=31),
    "cnn_unscaled": lambda: build_cnn_small(name="cnn_unscaled", classes=10),
    "mlp_underfit": lambda: build_mlp_bottleneck(),  # defined below
    "mlp_imbalance": lambda: build_mlp(name="mlp_imbalance", n_features=12),
    "mlp_diverged": lambda: build_mlp(name="mlp_diverged"),
    "conv_gru": lambda: build_conv_gru(),  # defined below
    "resnet": lambda: build_resnet(),  # defined below
}


def build_mlp_regression(name="mlp_regression", n_features=10, hidden=(32, 16)):
    """Dense ReLU layers and one linear output unit: a regression model (trained with MSE)."""
    inputs = keras.Input((n_features,), name="features")
    x = inputs
    for i, units in enumerate(hidden):
        x = layers.Dense(units, activation="relu", name=f"dense{i + 1}")(x)
    return keras.Model(inputs, layers.Dense(1, activation="linear", name="value")(x), name=name)


def build_mlp_bottleneck(name="mlp_underfit", input_shape=(28, 28, 1), hidden=32, bottleneck=2, classes=10):
    """Flattened image, a ReLU layer, then a linear ``bottleneck`` of 2 units before a softmax over 10 classes:
    every class must be told apart from a point in the plane, which a linear model on the pixels does not need."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(hidden, activation="relu", name="dense1")(x)
    x = layers.Dense(bottleneck, activation="linear", name="bottleneck")(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="probs")(x), name=name)


def build_conv_gru(name="conv_gru", filters=16, units=24):
    """A 1-D convolution (16 filters over 5 steps, ReLU) and a GRU over its feature sequence, softmax over the three
    motif classes: the convolution sees a motif's shape, the GRU carries it to the last step."""
    inputs = keras.Input((ds.MOTIF_STEPS, ds.MOTIF_CHANNELS), name="sequence")
    x = layers.Conv1D(filters, 5, padding="same", activation="relu", kernel_initializer="he_uniform", name="conv")(inputs)
    x = layers.GRU(units, name="gru")(x)
    outputs = layers.Dense(ds.MOTIF_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv_bn(x, filters, name, strides=1, relu=True):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, kernel_initializer="he_uniform",
                      name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def build_resnet(name="resnet", filters=(16, 32)):
    """A small residual network (He et al., 2016): a stem convolution, then per stage a block of two 3x3
    convolutions with batch normalisation whose input is added back (a 1x1 strided projection where the shape
    changes), global average pooling and a softmax over 10 classes. No dense hidden layer, no dropout."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = _conv_bn(inputs, filters[0], "stem", strides=2)  # 14x14
    for i, f in enumerate(filters):
        strides = 1 if i == 0 else 2
        shortcut = x
        if strides != 1 or x.shape[-1] != f:
            shortcut = layers.Conv2D(f, 1, strides=strides, use_bias=False, name=f"block{i + 1}_project")(x)
            shortcut = layers.BatchNormalization(name=f"block{i + 1}_project_bn")(shortcut)
        y = _conv_bn(x, f, f"block{i + 1}_conv1", strides=strides)
        y = _conv_bn(y, f, f"block{i + 1}_conv2", relu=False)
        x = layers.ReLU(name=f"block{i + 1}_out")(layers.Add(name=f"block{i + 1}_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)
