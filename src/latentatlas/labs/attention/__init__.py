"""The attention lab: attention and model internals for any transformer (head, model, matrix and neuron
views, the head atlas) and the ground truth it is checked against (induction heads trained here)."""

NAME = "attention"
# "attention": a transformers model under study (the run names it, holds no weights);
# "attn_only": the attention-only transformer trained here on repeated spans (induction heads)
KINDS = ("attention", "attn_only")
