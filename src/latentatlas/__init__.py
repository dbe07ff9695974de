"""latentatlas: a workbench for understanding latent spaces.

The notebook API::

    import latentatlas as la
    run, _ = la.train("beta_tcvae", data="sprites", steps=2000)
    report = la.evaluate(run)
    model = la.load_model(run.path)
"""

__version__ = "0.1.0"

from .errors import LatentAtlasError  # noqa: E402

_LAZY = {
    "Atlas": ("latentatlas.atlas", "Atlas"),
    "Run": ("latentatlas.atlas", "Run"),
    "load_dataset": ("latentatlas.data", "load_dataset"),
    "Sprites": ("latentatlas.data.sprites", "Sprites"),
    "load_model": ("latentatlas.models.io", "load_model"),
    "save_model": ("latentatlas.models.io", "save_model"),
    "VAE": ("latentatlas.models.vae", "VAE"),
    "VAEConfig": ("latentatlas.models.vae", "VAEConfig"),
    "TrainConfig": ("latentatlas.trainer", "TrainConfig"),
    "fit": ("latentatlas.trainer", "fit"),
    "train": ("latentatlas.labs.vae.jobs", "train_run"),
    "evaluate": ("latentatlas.labs.vae.jobs", "evaluate_run"),
    "encode": ("latentatlas.labs.vae.jobs", "encode_dataset"),
    "capture_store": ("latentatlas.labs.sae.jobs", "capture_store"),
    "train_sae": ("latentatlas.labs.sae.jobs", "train_sae"),
    "evaluate_sae": ("latentatlas.labs.sae.jobs", "evaluate_sae"),
    "SAEExplorer": ("latentatlas.labs.sae.explore", "SAEExplorer"),
    "VAEExplorer": ("latentatlas.labs.vae.explore", "VAEExplorer"),
    "attention": ("latentatlas.labs.attention.notebook", None),
    "analysis": ("latentatlas.analysis", None),
    "train_vit": ("latentatlas.labs.attention.vit", "train_vit"),
    "ViTExplorer": ("latentatlas.labs.attention.vit", "ViTExplorer"),
    "figures": ("latentatlas.figures", None),
    "ablate": ("latentatlas.labs.attention.ablate", "ablate"),
    "trace": ("latentatlas.tracing", "trace"),
    "graph": ("latentatlas.labs.attention.graph", "graph"),
}


def __getattr__(name: str):
    # Imports are lazy so that `latentatlas --help` does not pay for torch and sklearn.
    if name not in _LAZY:
        raise AttributeError(f"module 'latentatlas' has no attribute '{name}'")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["LatentAtlasError", "__version__", *_LAZY]
