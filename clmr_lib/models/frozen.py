"""The frozen encoder an evaluation probes, chosen by the config: a checkpoint or a random init."""
from __future__ import annotations

from torch import nn

from clmr_lib.errors import UserError


def frozen_encoder_from_config(config: dict) -> tuple[nn.Module, str]:
    """The frozen encoder to probe and its name.

    ``--checkpoint PATH`` loads a SampleCNN checkpoint (ours or any original CLMR format);
    ``--checkpoint random`` builds a randomly initialised SampleCNN with the config's layout, seeded
    by ``--seed`` (the random-init baseline); ``--checkpoint mfcc`` the MFCC-statistics baseline.
    ``--encoder musicfm`` or ``--checkpoint musicfm`` loads MusicFM (see :func:`musicfm_from_config`).
    """
    import lightning as L

    from clmr_lib.checkpoints import frozen, load_encoder
    from clmr_lib.models.sample_cnn import SampleCNN

    path = config.get("checkpoint_path") or ""
    # MusicFM: "--checkpoint musicfm" (beside other checkpoints in one comparison), or --encoder musicfm
    # with its checkpoint in --musicfm_checkpoint or --checkpoint.
    mfm = config.get("musicfm_checkpoint") or ""
    if path == "musicfm" or (config.get("encoder") == "musicfm" and (not path or not mfm or path == mfm)):
        return musicfm_from_config(config)
    if not path:
        raise UserError("no encoder to evaluate: pass --checkpoint PATH (or --checkpoint random for the baseline)")
    if path == "random":
        L.seed_everything(int(config["seed"]), verbose=False)
        encoder = SampleCNN(channels=config["sample_cnn_channels"], strides=config["sample_cnn_strides"],
                            sample_rate=int(config["sample_rate"]), audio_length=int(config["audio_length"]))
        return with_layer(frozen(encoder), "random", config)
    if path == "mfcc":
        # The classical baseline: MFCC statistics of each chunk, at the config's rate and chunk length.
        from clmr_lib.evaluation.mfcc import MFCCStatistics

        return frozen(MFCCStatistics(int(config["sample_rate"]), int(config["audio_length"]))), "mfcc"
    return with_layer(load_encoder(path), str(path), config)


def with_layer(encoder: nn.Module, name: str, config: dict) -> tuple[nn.Module, str]:
    """Select the SampleCNN layer of ``--sample_cnn_layer`` (``--all_layers true``: every block).

    The default (the last block) keeps the name; another choice is appended to it, so that the
    results of several layers of one checkpoint do not overwrite each other.
    """
    from pathlib import Path

    layer = "all" if config.get("all_layers") else config.get("sample_cnn_layer", -1)
    try:
        encoder.layer = layer
    except ValueError as exc:
        raise UserError(f"--sample_cnn_layer {layer}: this SampleCNN has {encoder.num_layers} blocks; choose "
                        f"0..{encoder.num_layers - 1} (-1: the last, CLMR's representation)") from exc
    if encoder.layer == encoder.num_layers - 1:
        return encoder, name
    tag = "all_layers" if layer == "all" else f"layer{encoder.layer}"
    return encoder, str(Path(name).with_name(f"{Path(name).stem}_{tag}"))


def musicfm_from_config(config: dict) -> tuple[nn.Module, str]:
    """``--encoder musicfm`` or ``--checkpoint musicfm``: frozen MusicFM from ``--musicfm_checkpoint``/``_stats``.

    ``--musicfm_layer`` picks the hidden state (7 as the MusicFM README recommends; ``--all_layers
    true`` for all of them), ``--musicfm_chunk_seconds`` the chunk length of the evaluation and
    ``--musicfm_window_seconds`` the longest single pass.
    """
    from pathlib import Path

    from clmr_lib.models.musicfm import MusicFM, MusicFMEncoder
    from clmr_lib.models.musicfm.encoder import CONTEXT_SECONDS

    path = config.get("checkpoint_path") or ""
    checkpoint = config.get("musicfm_checkpoint") or (path if path != "musicfm" else "")
    stats = config.get("musicfm_stats") or ""
    if not checkpoint:
        raise UserError("--encoder musicfm needs --musicfm_checkpoint PATH: pretrained_msd.pt (or pretrained_fma.pt) "
                        "from huggingface.co/minzwon/MusicFM")
    if not stats:
        raise UserError("--encoder musicfm needs --musicfm_stats PATH: msd_stats.json (or fma_stats.json), published "
                        "with the checkpoint")
    chunk, window = float(config.get("musicfm_chunk_seconds", 10.0)), float(config.get("musicfm_window_seconds", 30.0))
    if chunk <= 0:
        raise UserError(f"--musicfm_chunk_seconds {chunk}: the chunk length must be positive (default 10)")
    if window <= 2 * CONTEXT_SECONDS:
        raise UserError(f"--musicfm_window_seconds {window}: windows must be longer than {2 * CONTEXT_SECONDS:g} s "
                        "(default 30, MusicFM's pre-training length)")
    model = MusicFM.from_pretrained(checkpoint, stats)
    layer = "all" if config.get("all_layers") else config.get("musicfm_layer", 7)
    try:
        encoder = MusicFMEncoder(model, layer, chunk_seconds=chunk, window_seconds=window)
    except ValueError as exc:
        raise UserError(f"--musicfm_layer {layer}: {checkpoint} has hidden states 0..{model.depth} (0: conv "
                        f"front-end, {model.depth}: last block); choose one of them") from exc
    tag = "all_layers" if layer == "all" else f"layer{encoder.layer}"
    return encoder, f"musicfm_{Path(checkpoint).stem}_{tag}"
