"""difflab: a small, fast, honest toolkit for diffusion-model research on small images.

Importing this package is cheap on purpose: torch and every optional dependency are imported
by the sub-packages that need them, never here.
"""

__version__ = "0.1.0"
