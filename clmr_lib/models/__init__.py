"""Encoders and heads; ``ENCODERS`` maps a config name to a constructor."""
from clmr_lib.models.heads import ProbeHead, ProjectionHead
from clmr_lib.models.musicfm import MusicFMEncoder, build_musicfm_encoder
from clmr_lib.models.protocol import ALL_LAYERS, AudioEncoder
from clmr_lib.models.sample_cnn import SampleCNN

ENCODERS = {
    "sample_cnn": SampleCNN,
    "musicfm": build_musicfm_encoder,  # frozen pretrained backbone: checkpoint_path, stats_path, layer
}


def build_encoder(name: str, **kwargs):
    """Construct the encoder registered as ``name`` with keyword arguments from the config."""
    from clmr_lib.errors import UserError

    if name not in ENCODERS:
        raise UserError(f"unknown encoder '{name}' (--encoder); choose one of: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](**kwargs)


__all__ = ["ALL_LAYERS", "AudioEncoder", "ENCODERS", "build_encoder", "MusicFMEncoder", "SampleCNN", "ProjectionHead",
           "ProbeHead"]
