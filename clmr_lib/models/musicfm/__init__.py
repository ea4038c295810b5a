"""Native PyTorch MusicFM (Won et al., ICASSP 2024) loading the official checkpoints, and its encoder."""
from clmr_lib.models.musicfm.encoder import MusicFMEncoder, build_musicfm_encoder
from clmr_lib.models.musicfm.model import MusicFM

__all__ = ["MusicFM", "MusicFMEncoder", "build_musicfm_encoder"]
