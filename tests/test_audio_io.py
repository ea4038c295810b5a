"""audio_io: header info, seeking crop reads equal whole-file reads, errors name the file, atomic writes."""
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
import torch

from clmr_lib.data import audio_io
from clmr_lib.data.audio_io import AUDIO_EXTENSIONS, AudioInfo, AudioReadError, audio_info, read_audio, write_audio

TARGET = 22050
CROP = 59049

# (extension, soundfile options) for every format and encoding we read.
FORMATS = {
    "wav16": (".wav", {"subtype": "PCM_16"}),
    "wavfloat": (".wav", {"subtype": "FLOAT"}),
    "flac": (".flac", {}),
    "ogg": (".ogg", {}),
    "mp3": (".mp3", {}),
}
# Lossless formats decode to the same samples however they are reached; the decoders of lossy
# ones carry state (MDCT overlap, synthesis filter bank) that lead-in decoding restores only to
# float rounding; resampling adds rounding of its own.
EXACT = {"wav16", "wavfloat", "flac", "ogg"}


def crop_offsets(length, size, rng):
    """Offsets that matter: the start, unaligned ones, the last full crop and crops over the end."""
    fixed = [0, 1, 137, 1153, length // 2, length - size, length - size - 1, length - size // 2, length - 3]
    return sorted({int(o) for o in fixed + list(rng.integers(0, max(length - size, 1), 4)) if o >= 0})


@pytest.mark.parametrize("kind", sorted(FORMATS))
@pytest.mark.parametrize("sample_rate,channels", [(22050, 1), (22050, 2), (44100, 2), (48000, 1), (8000, 2)])
def test_crop_equals_slice_of_whole_read(tmp_path, make_audio_file, kind, sample_rate, channels):
    extension, options = FORMATS[kind]
    # An odd length, so the last crops end off the resampler's grid.
    path = make_audio_file(tmp_path / f"x{extension}", seconds=4.0 + 7 / sample_rate, sample_rate=sample_rate,
                           channels=channels, **options)
    info = audio_info(path)
    whole = read_audio(path, TARGET)
    assert whole.dtype == np.float32 and whole.ndim == 1
    assert whole.shape[0] == info.num_samples(TARGET) == info.frames * TARGET // sample_rate
    size = 20000
    for offset in crop_offsets(whole.shape[0], size, np.random.default_rng(0)):
        crop = read_audio(path, TARGET, offset=offset, num_samples=size, info=info)
        expected = np.zeros(size, dtype=np.float32)
        tail = whole[offset:offset + size]
        expected[:tail.shape[0]] = tail
        assert crop.shape == (size,) and crop.dtype == np.float32
        if sample_rate == TARGET and kind in EXACT:
            np.testing.assert_array_equal(crop, expected, err_msg=f"offset {offset}")
        else:
            np.testing.assert_allclose(crop, expected, atol=1e-5, rtol=0, err_msg=f"offset {offset}")


@pytest.mark.parametrize("kind", ["wav16", "flac", "ogg"])
def test_same_rate_whole_read_is_the_channel_mean(tmp_path, make_audio_file, kind):
    extension, options = FORMATS[kind]
    path = make_audio_file(tmp_path / f"s{extension}", seconds=2.0, sample_rate=TARGET, channels=2, **options)
    stereo, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(read_audio(path, TARGET), stereo.mean(axis=1, dtype=np.float32))
    np.testing.assert_array_equal(read_audio(path, TARGET, offset=5000, num_samples=CROP // 4),
                                  stereo[5000:5000 + CROP // 4].mean(axis=1, dtype=np.float32))


def test_vorbis_crops_in_the_last_page_are_not_shifted(tmp_path, make_audio_file):
    # libsndfile 1.2.2 seeks too far inside the last Ogg page (issue 885); reads there must
    # still equal a straight decode.
    path = make_audio_file(tmp_path / "tail.ogg", seconds=3.0, sample_rate=44100, channels=2)
    straight, _ = sf.read(path, dtype="float32", always_2d=True)
    straight = straight.mean(axis=1, dtype=np.float32)
    length = straight.shape[0]
    for offset in range(length - 12000, length - 10, 601):
        crop = read_audio(path, 44100, offset=offset, num_samples=1000)
        expected = np.zeros(1000, dtype=np.float32)
        expected[:length - offset] = straight[offset:offset + 1000]
        np.testing.assert_array_equal(crop, expected, err_msg=f"offset {offset}")


@pytest.mark.parametrize("sample_rate", [22050, 44100])
def test_low_bitrate_mp3_crops_start_clean(tmp_path, make_audio_file, sample_rate):
    # At low bit rates a frame's data start in earlier frames (the bit reservoir); a crop that
    # seeks there must decode a lead-in first or its first samples come out wrong.
    path = make_audio_file(tmp_path / "low.mp3", seconds=5.0, sample_rate=sample_rate, compression_level=0.9,
                           noise=0.1)
    straight, _ = sf.read(path, dtype="float32")
    rng = np.random.default_rng(1)
    for offset in rng.integers(10000, straight.shape[0] - 3000, 25):
        crop = read_audio(path, sample_rate, offset=int(offset), num_samples=2000)
        np.testing.assert_allclose(crop, straight[offset:offset + 2000], atol=1e-6, rtol=0)


@pytest.mark.parametrize("sample_rate,frames", [(8000, 8001), (44100, 88201), (48000, 96007), (22050, 22051)])
def test_resampled_length_is_exact(tmp_path, sample_rate, frames):
    path = str(tmp_path / "n.wav")
    sf.write(path, np.zeros(frames, dtype=np.float32), sample_rate)
    info = audio_info(path)
    assert read_audio(path, TARGET).shape == (frames * TARGET // sample_rate,)
    assert read_audio(path, TARGET, offset=3, num_samples=12345).shape == (12345,)
    assert info.num_samples(TARGET) == frames * TARGET // sample_rate
    assert info.duration == pytest.approx(frames / sample_rate)


def test_sine_keeps_its_frequency_after_resampling(tmp_path, make_audio_file):
    path = make_audio_file(tmp_path / "sine.wav", seconds=2.0, sample_rate=44100, frequency=1000.0, noise=0.0,
                           subtype="FLOAT")
    audio = read_audio(path, TARGET, offset=TARGET // 2, num_samples=TARGET // 2)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0])))
    peak = np.fft.rfftfreq(audio.shape[0], 1 / TARGET)[spectrum.argmax()]
    assert peak == pytest.approx(1000.0, abs=2.0)
    time = (TARGET // 2 + np.arange(audio.shape[0])) / TARGET
    np.testing.assert_allclose(audio, 0.5 * np.sin(2 * np.pi * 1000.0 * time), atol=1e-3)


def test_offsets_past_the_end_read_zeros(tmp_path, make_audio_file):
    path = make_audio_file(tmp_path / "p.flac", seconds=1.0, sample_rate=TARGET)
    length = audio_info(path).num_samples(TARGET)
    np.testing.assert_array_equal(read_audio(path, TARGET, offset=length + 100, num_samples=CROP), np.zeros(CROP))
    padded = read_audio(path, TARGET, offset=length - 10, num_samples=CROP)
    assert padded.shape == (CROP,) and np.any(padded[:10]) and not np.any(padded[10:])
    assert read_audio(path, TARGET, offset=length + 5).shape == (0,)
    assert read_audio(path, TARGET, num_samples=0).shape == (0,)
    # A whole file shorter than a crop comes back zero-padded to the crop length.
    short = read_audio(path, TARGET, num_samples=CROP)
    np.testing.assert_array_equal(short[:length], read_audio(path, TARGET))
    assert not np.any(short[length:])


@pytest.mark.parametrize("kind,reason", [
    ("corrupt_mp3", "not a recognised audio format"),
    ("corrupt_wav", "not a recognised audio format"),
    ("empty", "empty file"),
    ("no_frames", "0 frames"),
    ("truncated_wav", "truncated"),
])
def test_unreadable_files_raise_an_error_naming_them(broken_audio_files, kind, reason):
    path = broken_audio_files[kind]
    for call in (lambda: audio_info(path), lambda: read_audio(path, TARGET, num_samples=CROP)):
        with pytest.raises(AudioReadError) as caught:
            call()
        message = str(caught.value)
        assert path in message and reason in message and "\n" not in message
        assert caught.value.path == path and reason in caught.value.reason


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioReadError, match="file not found"):
        read_audio(str(tmp_path / "nope.wav"), TARGET)
    with pytest.raises(AudioReadError, match="folder"):
        audio_info(str(tmp_path))


def test_truncated_mp3_is_caught_by_verify_end_and_by_reads(broken_audio_files):
    path = broken_audio_files["truncated_mp3"]
    info = audio_info(path)  # the Xing header still announces the full length
    with pytest.raises(AudioReadError, match="truncated"):
        audio_info(path, verify_end=True)
    with pytest.raises(AudioReadError, match="truncated"):
        read_audio(path, TARGET, offset=info.num_samples(TARGET) - CROP, num_samples=CROP)
    # The intact start still reads.
    assert read_audio(path, TARGET, num_samples=1000).shape == (1000,)


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_verify_end_accepts_intact_files(tmp_path, make_audio_file, kind):
    extension, options = FORMATS[kind]
    path = make_audio_file(tmp_path / f"ok{extension}", seconds=2.5, sample_rate=44100, channels=2, **options)
    assert audio_info(path, verify_end=True) == audio_info(path)
    assert audio_info(path).format == {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}[extension]


def test_nan_samples_are_an_error(tmp_path):
    path = str(tmp_path / "nan.wav")
    data = np.zeros(4000, dtype=np.float32)
    data[1234] = np.nan
    sf.write(path, data, TARGET, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="NaN"):
        read_audio(path, TARGET)


def test_a_file_changed_since_the_scan_is_an_error(tmp_path, make_audio_file):
    path = make_audio_file(tmp_path / "c.wav", seconds=1.0)
    info = audio_info(path)
    make_audio_file(tmp_path / "c.wav", seconds=0.5)
    with pytest.raises(AudioReadError, match="changed since"):
        read_audio(path, TARGET, info=info)


def test_bad_arguments(tmp_path, make_audio_file):
    path = make_audio_file(tmp_path / "a.wav")
    for kwargs in ({"offset": -1}, {"num_samples": -5}, {"sample_rate": 0}):
        with pytest.raises(ValueError):
            read_audio(path, **{"sample_rate": TARGET, **kwargs})


def test_error_survives_pickling():
    error = pickle.loads(pickle.dumps(AudioReadError("/x/y.mp3", "truncated")))
    assert (error.path, error.reason) == ("/x/y.mp3", "truncated")
    assert str(error) == "cannot read audio file /x/y.mp3: truncated"


def test_extensions():
    assert AUDIO_EXTENSIONS == (".wav", ".flac", ".ogg", ".mp3")
    info = AudioInfo(frames=44100, sample_rate=44100, channels=2, format="WAV")
    assert info.duration == 1.0 and info.num_samples(22050) == 22050 and info.num_samples(16000) == 16000


def test_concurrent_reads_in_threads_and_workers(tmp_path, make_audio_file):
    paths = [make_audio_file(tmp_path / f"w{i}{ext}", seconds=1.5, sample_rate=44100)
             for i, ext in enumerate((".wav", ".flac", ".ogg", ".mp3"))]
    expected = [read_audio(p, TARGET, offset=777, num_samples=5000) for p in paths]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: read_audio(p, TARGET, offset=777, num_samples=5000), paths * 4))
    for index, result in enumerate(results):
        np.testing.assert_array_equal(result, expected[index % len(paths)])

    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, index):
            return torch.from_numpy(read_audio(paths[index], TARGET, offset=777, num_samples=5000))

    loader = torch.utils.data.DataLoader(Crops(), batch_size=1, num_workers=2)
    for index, batch in enumerate(loader):
        np.testing.assert_allclose(batch[0].numpy(), expected[index], atol=1e-6)


@pytest.mark.parametrize("extension", AUDIO_EXTENSIONS)
def test_write_audio_round_trip(tmp_path, extension):
    path = str(tmp_path / "out" / "deeper" / f"y{extension}")
    audio = 0.5 * np.sin(np.linspace(0, 200 * np.pi, 22050, dtype=np.float32))
    write_audio(path, np.stack([audio, -audio], axis=1), 22050)
    info = audio_info(path)
    assert (info.frames, info.sample_rate, info.channels) == (22050, 22050, 2)
    assert os.listdir(os.path.dirname(path)) == [f"y{extension}"]
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


def test_write_audio_float_subtype_is_lossless(tmp_path):
    path = str(tmp_path / "f.wav")
    audio = np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)
    write_audio(path, audio, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(path, 16000), audio)


def test_write_audio_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "keep.flac")
    write_audio(path, np.full(1000, 0.25, dtype=np.float32), 8000)
    before = open(path, "rb").read()
    real_write = sf.write

    def fail_midway(file, data, *args, **kwargs):
        real_write(file, data[:10], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(audio_io.sf, "write", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        write_audio(path, np.zeros(5000, dtype=np.float32), 8000)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["keep.flac"]


def test_write_audio_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        write_audio(str(tmp_path / "a.aiff"), np.zeros(10), 8000)
    with pytest.raises(ValueError, match="subtype"):
        write_audio(str(tmp_path / "a.flac"), np.zeros(10), 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="shape"):
        write_audio(str(tmp_path / "a.wav"), np.zeros((2, 3, 4)), 8000)
    assert os.listdir(tmp_path) == []


def test_scanning_threads_release_the_gil(tmp_path, make_audio_file):
    # The folder scan uses threads; that only helps if libsndfile calls run without the GIL.
    path = make_audio_file(tmp_path / "long.flac", seconds=20.0, sample_rate=44100)
    counter, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        with sf.SoundFile(path) as handle:
            before = counter[0]
            handle.read(dtype="float32")
            during = counter[0] - before
    finally:
        stop.set()
        spinner.join()
    assert during > 1000


def strip_length_header(path):
    """Drop the first MPEG-1 Layer III frame, the one LAME fills with the Xing/LAME length header."""
    data = open(path, "rb").read()
    header = data[:4]
    assert header[0] == 0xFF and (header[1] >> 3) & 3 == 3, "expected an MPEG-1 frame at the start"
    bitrate = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[header[2] >> 4] * 1000
    sample_rate = (44100, 48000, 32000)[(header[2] >> 2) & 3]
    frame_bytes = 144 * bitrate // sample_rate + ((header[2] >> 1) & 1)
    assert b"Xing" in data[:frame_bytes] or b"Info" in data[:frame_bytes]
    open(path, "wb").write(data[frame_bytes:])


def test_mp3_length_estimates_that_run_long(tmp_path):
    # Without a Xing/LAME header libsndfile estimates an MP3's length from its first frame; a quiet
    # start (small frames) makes the estimate far too long. Small overshoots are zero-padded,
    # large ones are reported, and the real audio still reads.
    path = str(tmp_path / "estimated.mp3")
    audio = np.zeros(44100 * 4, dtype=np.float32)
    audio[44100:] = 0.3 * np.random.default_rng(0).standard_normal(44100 * 3)
    sf.write(path, audio, 44100)
    strip_length_header(path)
    info = audio_info(path)
    straight, _ = sf.read(path, dtype="float32")
    decodable = straight.shape[0]
    assert info.frames > 1.5 * decodable
    with pytest.raises(AudioReadError, match="without a length header"):
        audio_info(path, verify_end=True)
    with pytest.raises(AudioReadError, match="no audio data at"):
        read_audio(path, 44100, offset=decodable + 30000, num_samples=CROP)
    padded = read_audio(path, 44100, offset=decodable - 5000, num_samples=8000, info=info)
    np.testing.assert_allclose(padded[:5000], straight[-5000:], atol=1e-6)
    assert not np.any(padded[5000:])
