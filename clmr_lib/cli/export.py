"""``export_embeddings.py``: embeddings of a folder of audio, one .npy per track plus an index, for other tools."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from clmr_lib.cli import run_cli
from clmr_lib.config import parse_config
from clmr_lib.errors import UserError

EXTRA = [
    (("--audio_dir",), {"default": "", "metavar": "DIR",
                        "help": "folder of audio files to embed (searched recursively)"}),
    (("--export_dir",), {"default": "", "metavar": "DIR",
                         "help": "where the .npy files and index.csv/.json go (default <log_dir>/exports/<encoder>)"}),
    (("--level",), {"default": "clip", "choices": ("clip", "frames", "both"),
                    "help": "clip: one vector per track; frames: vectors with timestamps; both (default clip)"}),
    (("--frame_hop_ms",), {"type": float, "default": 0.0, "metavar": "MS",
                           "help": "SampleCNN: milliseconds between frame embeddings (default 500; MusicFM: 40)"}),
    (("--overwrite",), {"action": "store_true", "help": "embed every track again and replace existing files"}),
    (("--checkpoint", "--checkpoint_path"), {
        "dest": "checkpoint_path", "default": "", "metavar": "PATH",
        "help": "SampleCNN/CLMR checkpoint (or random); MusicFM: --encoder musicfm --musicfm_checkpoint PATH "
                "--musicfm_stats PATH"}),
]


def export(argv: Optional[Sequence[str]] = None) -> dict:
    """Parse the command line, load the frozen encoder, export, print where everything is."""
    from clmr_lib.export import export_embeddings
    from clmr_lib.utils.precision import check_precision
    from clmr_lib.models.frozen import frozen_encoder_from_config

    config = parse_config(argv, "Export embeddings of a folder of audio: one .npy per track plus an index.",
                          extra=EXTRA)
    if not config["audio_dir"]:
        raise UserError("no audio to embed: pass --audio_dir DIR (a folder of .wav/.flac/.ogg/.mp3 files)")
    from clmr_lib.training.checks import _number

    for key, hint in (("sample_rate", " (Hz; CLMR: 22050)"), ("audio_length", " (samples; CLMR: 59049)")):
        _number(config, key, int, 1, hint)
    precision = check_precision(config.get("precision", "32-true"), int(config.get("gpus", 0) or 0))
    if config.get("reuse_memory", True):
        from clmr_lib.utils.memory import keep_freed_memory

        keep_freed_memory()
    encoder, name = frozen_encoder_from_config(config)
    if config["frame_hop_ms"]:
        if not hasattr(encoder, "frame_hop") or config.get("encoder") == "musicfm":
            raise UserError("--frame_hop_ms applies to SampleCNN only: MusicFM's frames are fixed at 40 ms (25 Hz)")
        if config["frame_hop_ms"] < 0:
            raise UserError(f"--frame_hop_ms {config['frame_hop_ms']}: must be positive")
        encoder.frame_hop = max(int(round(config["frame_hop_ms"] / 1000 * encoder.sample_rate)), 1)
    export_dir = config["export_dir"] or str(Path(config.get("log_dir") or "runs") / "exports" / Path(name).stem)
    try:
        summary = export_embeddings(encoder, config["audio_dir"], export_dir, level=config["level"], name=name,
                                    overwrite=config["overwrite"], progress=bool(config.get("progress", True)),
                                    precision=precision)
    except KeyboardInterrupt:
        # Finished tracks are complete files (atomic writes); the same command continues from them.
        print("interrupted; run the same command again to continue", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"{summary['exported']} tracks embedded, {summary['reused']} already there, "
          f"{len(summary['skipped'])} skipped ({name}, {config['level']} level)")
    for item in summary["skipped"]:
        print(f"  skipped {item['track']}: {item['reason']}")
    print(f"index: {summary['index']} (and {Path(summary['index_json']).name}); layout: {summary['manifest']}")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: returns the exit status (2 for a user error)."""
    return run_cli(export, argv)


if __name__ == "__main__":
    sys.exit(main())
