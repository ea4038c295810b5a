"""Crops: two random views by seeking, chunks for evaluation, unreadable files flagged not shifted."""
import numpy as np
import torch

from clmr_lib.data.audio_io import read_audio
from clmr_lib.data.crops import RandomCrops, TrackChunks
from clmr_lib.data.track import Track


def make_tracks(tmp_path, make_audio_file, broken_audio_files):
    good = make_audio_file(tmp_path / "good.wav", seconds=2.0, sample_rate=8000)
    short = make_audio_file(tmp_path / "short.flac", seconds=0.25, sample_rate=16000)
    return [Track(good, "good", 1), Track(broken_audio_files["corrupt_wav"], "bad", 0), Track(short, "short", 2)]


def test_random_crops_are_slices_of_the_file(tmp_path, make_audio_file, broken_audio_files):
    tracks = make_tracks(tmp_path, make_audio_file, broken_audio_files)
    data = RandomCrops(tracks, sample_rate=8000, audio_length=4000, n_views=2, num_classes=3)
    torch.manual_seed(0)
    audio, label, index, ok = data[0]
    assert audio.shape == (2, 4000) and audio.dtype == torch.float32 and ok and index == 0
    np.testing.assert_array_equal(label.numpy(), [0, 1, 0])
    whole = read_audio(tracks[0].path, 8000)
    for view in audio.numpy():
        starts = [s for s in range(len(whole) - 4000 + 1) if np.allclose(whole[s:s + 4000], view, atol=1e-6)]
        assert starts, "a crop must be a contiguous slice of the file"
    assert not torch.equal(audio[0], audio[1])


def test_unreadable_item_is_flagged_and_keeps_its_label(tmp_path, make_audio_file, broken_audio_files):
    tracks = make_tracks(tmp_path, make_audio_file, broken_audio_files)
    data = RandomCrops(tracks, sample_rate=8000, audio_length=4000, num_classes=3)
    audio, label, index, ok = data[1]
    assert not ok and index == 1 and label.argmax() == 0 and audio.abs().sum() == 0
    # A short file is zero-padded at the end to a full crop (0.25 s resampled to 8 kHz: 2000 samples).
    audio, _, _, ok = data[2]
    assert ok and audio.shape == (2, 4000) and audio[:, 2050:].abs().max() == 0 and audio[0, :1900].abs().max() > 0


def test_track_chunks_non_overlapping_and_overlapping(tmp_path, make_audio_file, broken_audio_files):
    tracks = make_tracks(tmp_path, make_audio_file, broken_audio_files)
    chunks, _, _, ok = TrackChunks(tracks, 8000, 3000)[0]
    whole = read_audio(tracks[0].path, 8000)
    assert ok and chunks.shape == (5, 3000)  # 16000 samples -> 5 full chunks, the partial one dropped
    np.testing.assert_array_equal(chunks[1].numpy(), whole[3000:6000])
    overlapped, _, _, _ = TrackChunks(tracks, 8000, 3000, hop=1500)[0]
    assert overlapped.shape == (9, 3000)
    short, _, _, ok = TrackChunks(tracks, 8000, 3000)[2]
    assert ok and short.shape == (1, 3000)
    _, _, _, ok = TrackChunks(tracks, 8000, 3000)[1]
    assert not ok
