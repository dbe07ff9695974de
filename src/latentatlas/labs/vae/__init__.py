"""The VAE lab: autoencoders and VAEs (``ae``, ``vae``, ``beta_vae``, ``beta_tcvae``) trained on images or
vectors, measured (reconstruction, KL, active units, disentanglement) and explored (the latent map,
inspector, traversals, interpolation)."""

NAME = "vae"
# the run kinds this lab owns; equal to models.vae.FAMILY (a test checks), spelled out so that importing
# the lab does not import torch
KINDS = ("ae", "vae", "beta_vae", "beta_tcvae")
