"""The SAE lab: transformer activations captured into a sharded store, sparse autoencoders trained on
them (``relu``, ``topk``, ``batchtopk``, ``jumprelu``), measured (sparsity, reconstruction, downstream
fidelity, rate), swept over their sparsity knob, and explored (feature pages, the probe, steering)."""

NAME = "sae"
KINDS = ("sae", "sae_sweep")
