"""The VAE lab: autoencoders and VAEs (``ae``, ``vae``, ``beta_vae``, ``beta_tcvae``) trained on images or
vectors, measured (reconstruction, KL, active units, disentanglement) and explored (the latent map,
inspector, traversals, interpolation)."""

NAME = "vae"
# the run kinds this lab owns; MODEL_KINDS equal models.vae.FAMILY (a test checks), spelled out so that importing
# the lab does not import torch
KINDS = ("ae", "vae", "beta_vae", "beta_tcvae", "embeddings")
# "embeddings": a user's own vectors imported for the map (`latentatlas vae import`), no model; the map lives
# in this lab until a second lab needs it (docs/architecture.md)
MODEL_KINDS = KINDS[:4]
