"""The attention lab: attention and model internals for any transformer (head, model, matrix and neuron
views, the head atlas) and the ground truth it is checked against (induction heads trained here)."""

NAME = "attention"
# "attention": a transformers model under study (the run names it, holds no weights);
# "attn_only": the attention-only transformer trained here on repeated spans (induction heads);
# "sd_vae": the SD-style VAE (diffusers AutoencoderKL) trained here for the ablation lab;
# "diffusers_vae": a user's AutoencoderKL folder under study (the run names it, holds no weights);
# "vit": a small ViT trained here on digits or sprites, or a transformers ViT folder (labs/attention/vit.py)
KINDS = ("attention", "attn_only", "sd_vae", "diffusers_vae", "vit")
