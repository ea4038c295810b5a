"""MusicFM's random-projection quantizer: frozen projection and codebook behind its pre-training targets."""
import torch
from torch import nn


class RandomProjectionQuantizer(nn.Module):
    """Frozen random projection and codebook (BEST-RQ style targets of MusicFM, Won et al., ICASSP 2024).

    Only pre-training uses them (stacked mel frames are projected and matched to the nearest
    codeword to give target token ids), so no forward pass is implemented; they live here because
    the official checkpoints store them as the buffers ``random_projection`` and ``codebook``.
    The original constructor calls ``torch.manual_seed(seed)`` to draw them; this one draws the
    same values from a private generator and leaves the global RNG alone.

    Args:
        input_dim: Size of a stacked mel vector (``4 * n_mels``).
        codebook_dim: Size of the projected vector.
        codebook_size: Number of codewords.
        seed: Seed of the private generator (142 in MusicFM).
    """

    def __init__(self, input_dim: int, codebook_dim: int, codebook_size: int, seed: int = 142) -> None:
        super().__init__()
        device = torch.empty(0).device  # honours an enclosing `with torch.device(...)`
        random_projection = torch.empty(input_dim, codebook_dim, device="cpu")
        codebook = torch.empty(codebook_size, codebook_dim, device="cpu")
        # Drawn on the CPU so the values do not depend on the device; skipped on the meta device,
        # where a checkpoint will supply them.
        if device.type != "meta":
            generator = torch.Generator().manual_seed(seed)
            nn.init.xavier_normal_(random_projection, generator=generator)
            nn.init.normal_(codebook, generator=generator)
        self.register_buffer("random_projection", random_projection.to(device))
        self.register_buffer("codebook", codebook.to(device))
