"""The flow lab: flow matching and diffusion on 2-D toys (and, later, in a VAE's latent space and a small
DiT), every sampler counted in network evaluations and checked against the exact answer where one exists."""

NAME = "flow"
# "flow": a flow-matching or VP-diffusion model trained here (models/flow.py), on a toy, a point file, or
# the coupling of another flow run (reflow); "flow_dit": a class-conditional DiT trained here (labs/flow/dit.py);
# "factor_classifier": the sprites factor classifier that scores latent diffusion's decoded samples (labs/flow/latent.py)
KINDS = ("flow", "flow_dit", "factor_classifier")
