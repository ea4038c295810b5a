"""The HEAR benchmark API (Turian et al., 2022) for every clmr_lib encoder: load_model and two embedding functions."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from clmr_lib.errors import UserError
from clmr_lib.models.protocol import ALL_LAYERS, AudioEncoder

#: HEAR suggests timestamp embeddings at most 50 ms apart (its music transcription onset tolerance).
HEAR_HOP_MS = 50.0
_OPTIONS = ("encoder", "stats_path", "layer", "sample_rate", "input_sample_rate", "hop_ms", "chunk_seconds",
            "window_seconds", "device", "seed")


class HearModel(nn.Module):
    """An encoder with the attributes HEAR asks of a model.

    Layers in ``"all"`` mode are concatenated (HEAR embeddings are vectors), so the embedding
    sizes are ``num_layers * embedding_dim`` then.

    Attributes:
        encoder: The wrapped :class:`~clmr_lib.models.protocol.AudioEncoder` (frozen, eval mode).
        sample_rate: Sample rate the audio must have, in Hz: the encoder's, or ``input_sample_rate``
            (then the audio is resampled to the encoder's inside, with soxr).
        scene_embedding_size: Size of a ``get_scene_embeddings`` vector.
        timestamp_embedding_size: Size of a ``get_timestamp_embeddings`` vector.

    Args:
        encoder: The encoder, with its layer and frame hop already chosen.
        input_sample_rate: Rate of the audio the caller passes (default: the encoder's).
    """

    def __init__(self, encoder: AudioEncoder, input_sample_rate: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.sample_rate = int(input_sample_rate or encoder.sample_rate)
        layers = encoder.num_layers if encoder.layer == ALL_LAYERS else 1
        self.scene_embedding_size = self.timestamp_embedding_size = int(encoder.embedding_dim * layers)
        self.eval()

    def train(self, mode: bool = True) -> HearModel:
        """Stay in eval mode: the embeddings of a frozen encoder must not depend on the mode."""
        return super().train(False)


def _sample_cnn(model_file_path: str, options: dict) -> AudioEncoder:
    from clmr_lib.checkpoints import frozen, load_encoder
    from clmr_lib.models.sample_cnn import SampleCNN

    if options.get("stats_path"):
        raise UserError("stats_path is a MusicFM option; pass encoder='musicfm' or leave it out for a SampleCNN")
    if model_file_path == "random":
        # The random-init baseline, in CLMR's layout.
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(int(options.get("seed", 0)))
        encoder = SampleCNN(sample_rate=int(options.get("sample_rate") or 22050))
        torch.random.set_rng_state(generator_state)
        return frozen(encoder)
    sample_rate = options.get("sample_rate")
    try:
        return load_encoder(model_file_path, sample_rate=int(sample_rate) if sample_rate else None)
    except UserError as exc:
        if "is not a SampleCNN/CLMR checkpoint" in str(exc):
            raise UserError(f"{exc}; for MusicFM pass encoder='musicfm' and stats_path='msd_stats.json'") from exc
        raise


def _musicfm(model_file_path: str, options: dict) -> AudioEncoder:
    from clmr_lib.models.musicfm import MusicFMEncoder

    if not options.get("stats_path"):
        raise UserError(f"MusicFM needs its statistics: load_model({model_file_path!r}, stats_path='msd_stats.json') "
                        "(or fma_stats.json for pretrained_fma.pt)")
    if options.get("hop_ms") is not None:
        raise UserError("hop_ms is a SampleCNN option: MusicFM's frames are fixed at 40 ms (25 Hz)")
    window = {key: float(options[key]) for key in ("chunk_seconds", "window_seconds") if options.get(key) is not None}
    return MusicFMEncoder.from_pretrained(model_file_path, options["stats_path"], layer=0, **window)


def load_model(model_file_path: str = "", **options: Any) -> HearModel:
    """Load an encoder for the HEAR API.

    Reads our SampleCNN checkpoints, every original CLMR checkpoint format, and the official
    MusicFM checkpoints (``pretrained_msd.pt`` / ``pretrained_fma.pt`` with ``stats_path``), all
    with ``weights_only=True`` and offline. ``model_file_path="random"`` gives a randomly
    initialised SampleCNN (the baseline).

    Args:
        model_file_path: The checkpoint.
        **options: ``encoder`` (``"sample_cnn"`` or ``"musicfm"``; default ``"musicfm"`` when
            ``stats_path`` is given), ``stats_path`` (MusicFM's stats JSON), ``layer`` (index or
            ``"all"``, concatenated; default MusicFM 7, SampleCNN its last block),
            ``sample_rate`` (SampleCNN: the rate it was trained at, default from the checkpoint,
            else CLMR's 22,050 Hz), ``input_sample_rate`` (the rate of the audio you will pass,
            e.g. one of HEAR's 16000, 22050, 32000, 44100, 48000 for MusicFM's 24 kHz; resampled
            inside; default the encoder's rate), ``hop_ms`` (SampleCNN: distance of timestamp embeddings,
            default 50 ms, one full window pass each), ``chunk_seconds`` and ``window_seconds``
            (MusicFM: see ``MusicFMEncoder``), ``device`` (default ``"cpu"``), ``seed`` (random init).

    Returns:
        A :class:`HearModel` in eval mode.

    Raises:
        UserError: The file or an option is wrong (one-line message naming it).
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise UserError(f"unknown load_model option(s) {', '.join(unknown)}; valid: {', '.join(_OPTIONS)}")
    model_file_path = os.fspath(model_file_path) if model_file_path is not None else ""
    if not model_file_path:
        raise UserError("load_model needs model_file_path: a SampleCNN/CLMR checkpoint, 'random', or a MusicFM "
                        "checkpoint with stats_path")
    name = options.get("encoder") or ("musicfm" if options.get("stats_path") else "sample_cnn")
    builders = {"sample_cnn": _sample_cnn, "musicfm": _musicfm}
    if name not in builders:
        raise UserError(f"unknown encoder {name!r} (load_model option encoder); choose one of: {', '.join(builders)}")
    encoder = builders[name](model_file_path, options)
    layer = options.get("layer")
    if layer is None:
        layer = 7 if name == "musicfm" else -1
    try:
        encoder.layer = layer
    except ValueError as exc:
        raise UserError(f"load_model option layer={layer!r}: {exc}") from exc
    if name == "sample_cnn":
        hop_ms = float(options.get("hop_ms") or HEAR_HOP_MS)
        if hop_ms <= 0:
            raise UserError(f"load_model option hop_ms={hop_ms}: must be positive (HEAR suggests <= 50)")
        encoder.frame_hop = max(int(round(hop_ms / 1000 * encoder.sample_rate)), 1)
    input_rate = options.get("input_sample_rate")
    if input_rate is not None and (isinstance(input_rate, bool) or int(input_rate) != input_rate or input_rate <= 0):
        raise UserError(f"load_model option input_sample_rate={input_rate!r}: must be a positive integer (Hz)")
    return HearModel(encoder, int(input_rate) if input_rate else None).to(options.get("device") or "cpu")


def _check(audio: torch.Tensor, model: nn.Module) -> None:
    if not isinstance(model, HearModel):
        raise ValueError(f"model must come from clmr_lib.hear.load_model, got {type(model).__name__}")
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
        shape = tuple(audio.shape) if hasattr(audio, "shape") else type(audio).__name__
        raise ValueError(f"audio must be a (n_sounds, n_samples) tensor at {model.sample_rate} Hz, got {shape}")


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """One embedding per sound.

    SampleCNN averages its embeddings of ``audio_length`` windows tiling the sound; MusicFM
    averages its 25 Hz frames (long sounds go through 30 s windows).

    Args:
        audio: ``(n_sounds, n_samples)`` mono audio in [-1, 1] at ``model.sample_rate``.
        model: From :func:`load_model`.

    Returns:
        float32 ``(n_sounds, model.scene_embedding_size)`` on the audio's device.
    """
    _check(audio, model)
    embeddings = model.encoder.clip_embeddings(audio, sample_rate=model.sample_rate)
    return embeddings.flatten(1).float().to(audio.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings at regular intervals, with the times of their centres.

    SampleCNN: one ``audio_length`` window centred every ``hop_ms`` (zero-padded at the ends);
    MusicFM: its 25 Hz frames, frame ``j`` centred on ``40 j`` ms. The first is centred on 0 ms.

    Args:
        audio: ``(n_sounds, n_samples)`` mono audio in [-1, 1] at ``model.sample_rate``.
        model: From :func:`load_model`.

    Returns:
        ``(embeddings, timestamps)``: float32 ``(n_sounds, n_timestamps,
        model.timestamp_embedding_size)`` and float32 ``(n_sounds, n_timestamps)`` in milliseconds,
        both on the audio's device.
    """
    _check(audio, model)
    embeddings, seconds = model.encoder.frame_embeddings(audio, sample_rate=model.sample_rate)
    timestamps = (seconds * 1000.0).float().to(audio.device).expand(audio.shape[0], -1)
    return embeddings.flatten(2).float().to(audio.device), timestamps
