"""The frozen encoder an evaluation probes, chosen by the config: a checkpoint or a random init."""
from __future__ import annotations

from torch import nn

from clmr_lib.errors import UserError


def frozen_encoder_from_config(config: dict) -> tuple[nn.Module, str]:
    """The frozen encoder to probe and its name.

    ``--checkpoint PATH`` loads a SampleCNN checkpoint (ours or any original CLMR format);
    ``--checkpoint random`` builds a randomly initialised SampleCNN with the config's layout, seeded
    by ``--seed`` (the random-init baseline).
    """
    import lightning as L

    from clmr_lib.checkpoints import frozen, load_encoder
    from clmr_lib.models.sample_cnn import SampleCNN

    path = config.get("checkpoint_path") or ""
    if not path:
        raise UserError("no encoder to evaluate: pass --checkpoint PATH (or --checkpoint random for the baseline)")
    if path == "random":
        L.seed_everything(int(config["seed"]), verbose=False)
        encoder = SampleCNN(channels=config["sample_cnn_channels"], strides=config["sample_cnn_strides"],
                            sample_rate=int(config["sample_rate"]), audio_length=int(config["audio_length"]))
        return frozen(encoder), "random"
    return load_encoder(path), str(path)
