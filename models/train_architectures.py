"""Healthy models of two more architectures (issue 25): a Conv1D + GRU sequence classifier and a small residual
network with batch normalisation. They exist to stay clean: every analyzer the zoo runs must find nothing wrong
with them, so a check that fires on a GRU, a 1-D convolution, a skip connection or a BatchNormalization layer
merely for being one is caught. Imported at the bottom of :mod:`diagnostics_zoo.train`, whose ``recipe``
registry and helpers they use; ``python -m diagnostics_zoo.train resnet`` trains one.
"""

from __future__ import annotations

import keras

from . import architectures as A
from .datasets import DATASETS
from .train import SEED, Artifact, Context, cosine, fit, fit_shifted_digits, recipe, sidecar


@recipe("conv_gru")
def train_conv_gru(ctx: Context) -> list[Artifact]:
    data = DATASETS["motif_sequences"](SEED)
    model = A.BUILDERS["conv_gru"]()
    epochs, bs = 15, 32
    history, final, training = fit(model, data, keras.optimizers.Adam(cosine(3e-3, len(data["x_train"]), bs, epochs)),
                                   "sparse_categorical_crossentropy", epochs, bs)
    return [Artifact("conv_gru", model, sidecar(
        "conv_gru", "A 1-D convolution (16 filters, 5 steps) feeding a GRU (24 units) that classifies the lstm's 50x4 "
        "noise sequences by which of three 6-step motifs is planted; mask_val marks the motif's steps.",
        "motif_sequences", "sequence", "multiclass", history, final, training, ground_truth="mask_val"))]


@recipe("resnet")
def train_resnet(ctx: Context) -> list[Artifact]:
    model, history, final, training = fit_shifted_digits(A.BUILDERS["resnet"], 3e-3, epochs=12)
    return [Artifact("resnet", model, sidecar(
        "resnet", "A small residual network (stem conv 16 stride 2, two residual blocks of 3x3 convolutions with batch "
        "normalisation, 16 and 32 filters, global average pooling, softmax 10) on scikit-learn's 8x8 digits "
        "upsampled to 28x28x1.", "digits28", "image", "multiclass", history, final, training))]
