"""purejax_ad: Artificial Dopamine (Guan et al., NeurIPS 2024) as one jitted, seed-vmapped JAX program."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``purejax_ad.load_params`` (:func:`purejax_ad.trained.load_params`), imported on first use so that
    ``import purejax_ad`` stays free of JAX (``--distributed`` must initialise JAX before anything else)."""
    if name == "load_params":
        from purejax_ad.trained import load_params

        return load_params
    raise AttributeError(f"module 'purejax_ad' has no attribute {name!r}")
