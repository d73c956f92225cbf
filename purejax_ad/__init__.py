"""purejax_ad: Artificial Dopamine (Guan et al., NeurIPS 2024) as one jitted, seed-vmapped JAX program."""

__version__ = "0.1.0"
