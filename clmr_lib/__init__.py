"""clmr_lib: self-supervised music representation learning (CLMR) on today's PyTorch stack."""
from clmr_lib.checkpoints import load_encoder

__version__ = "0.1.0"

__all__ = ["load_encoder", "__version__"]
