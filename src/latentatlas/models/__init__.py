"""Models: one config dataclass per family, a registry by ``kind``, one save/load format."""

from .flow import FlowConfig, FlowModel
from .io import load_model, read_config, save_model
from .registry import build, config_from_dict, kinds, lookup, register
from .sae import SAE, SAEConfig
from .toylm import AttnOnlyConfig, AttnOnlyTransformer
from .vae import FAMILY as VAE_KINDS
from .vae import VAE, VAEConfig
from .vit import ViT, ViTConfig

__all__ = ["AttnOnlyConfig", "AttnOnlyTransformer", "FlowConfig", "FlowModel", "SAE", "SAEConfig", "VAE", "VAEConfig", "VAE_KINDS", "ViT", "ViTConfig", "build", "config_from_dict", "kinds", "load_model", "lookup", "read_config", "register", "save_model"]
