"""--download: offline message, checksum mismatch, resumed partial downloads, split archives, safe extraction."""
import hashlib
import io
import os
import tarfile
import urllib.error
import zipfile

import pytest

from clmr_lib.cli.preprocess import main as preprocess_main
from clmr_lib.errors import UserError
from clmr_lib.preprocessing import download
from clmr_lib.preprocessing.download import Archive, Download, Remote, download_dataset, extract, fetch


class FakeResponse(io.BytesIO):
    """What urlopen returns: a readable body with a status and headers, honouring Range requests."""

    def __init__(self, body: bytes, request, honour_range: bool = True):
        start = 0
        wanted = request.headers.get("Range")
        if wanted and honour_range:
            start = int(wanted.split("=")[1].rstrip("-"))
        super().__init__(body[start:])
        self.status = 206 if start else 200
        self.headers = {"Content-Length": str(len(body) - start)}


def serve(monkeypatch, files: dict, requests: list = None, honour_range: bool = True):
    """Replace urlopen by a server of ``files`` (url -> bytes); unknown URLs fail like a dead host."""
    def fake_urlopen(request, timeout=None):
        if requests is not None:
            requests.append((request.full_url, request.headers.get("Range")))
        if request.full_url not in files:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return FakeResponse(files[request.full_url], request, honour_range)

    monkeypatch.setattr(download, "urlopen", fake_urlopen)


def sha1(data: bytes) -> str:
    return "sha1:" + hashlib.sha1(data).hexdigest()


def test_offline_message(tmp_path, monkeypatch):
    serve(monkeypatch, {})
    with pytest.raises(UserError) as error:
        fetch(Remote("a.zip", ("https://example.org/a.zip",), sha1(b"x")), str(tmp_path), progress=False)
    message = str(error.value)
    assert "cannot download a.zip" in message and "Temporary failure in name resolution" in message
    assert "check your internet connection" in message and "\n" not in message
    assert not os.path.exists(tmp_path / "a.zip")


def test_offline_from_the_command_line(tmp_path, monkeypatch, capsys):
    serve(monkeypatch, {})
    assert preprocess_main(["--dataset", "gtzan", "--dataset_dir", str(tmp_path), "--download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot download genres.tar.gz") and err.count("\n") == 1


def test_checksum_mismatch_deletes_the_file(tmp_path, monkeypatch):
    serve(monkeypatch, {"https://example.org/a.bin": b"corrupted"})
    with pytest.raises(UserError, match="checksum mismatch for a.bin"):
        fetch(Remote("a.bin", ("https://example.org/a.bin",), sha1(b"original")), str(tmp_path), progress=False)
    assert os.listdir(tmp_path) == []


def test_mirror_and_resume(tmp_path, monkeypatch):
    body = os.urandom(3 * download.CHUNK + 5)
    requests = []
    serve(monkeypatch, {"https://mirror.org/a.bin": body}, requests)
    (tmp_path / "a.bin.part").write_bytes(body[:1000])  # left by an interrupted download
    remote = Remote("a.bin", ("https://dead.org/a.bin", "https://mirror.org/a.bin"), sha1(body))
    assert fetch(remote, str(tmp_path), progress=False) == str(tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == body and not (tmp_path / "a.bin.part").exists()
    assert requests[-1] == ("https://mirror.org/a.bin", "bytes=1000-")
    fetch(remote, str(tmp_path), progress=False)  # already there: no request
    assert len(requests) == 2


def test_server_ignoring_range_restarts(tmp_path, monkeypatch):
    body = b"abcdef" * 100
    serve(monkeypatch, {"https://a.org/f": body}, honour_range=False)
    (tmp_path / "f.part").write_bytes(b"zzz")
    fetch(Remote("f", ("https://a.org/f",), sha1(body)), str(tmp_path), progress=False)
    assert (tmp_path / "f").read_bytes() == body


def test_split_zip_archive_and_unsafe_members(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("0/a.mp3", b"A" * 5000)
        archive.writestr("f/b.mp3", b"B" * 7000)
        archive.writestr("../escape.txt", b"no")
    data = buffer.getvalue()
    parts = [data[:3000], data[3000:9000], data[9000:]]
    files = {f"https://x.org/mp3.zip.00{i + 1}": part for i, part in enumerate(parts)}
    serve(monkeypatch, files)
    names = tuple(f"mp3.zip.00{i}" for i in (1, 2, 3))
    spec = Download("mtt", tuple(Remote(n, (f"https://x.org/{n}",)) for n in names),
                    (Archive(names, "md5:" + hashlib.md5(data).hexdigest()),))
    folder = tmp_path / "mtt"
    download_dataset(spec, str(folder), progress=False)
    assert (folder / "0" / "a.mp3").read_bytes() == b"A" * 5000 and (folder / "f" / "b.mp3").stat().st_size == 7000
    assert not (tmp_path / "escape.txt").exists()
    assert not [n for n in os.listdir(folder / "0") if n.startswith(".")]
    # A wrong checksum of the joined parts deletes them all.
    (folder / ".mp3.zip.001.extracted").unlink()
    bad = Download("mtt", spec.files, (Archive(names, "md5:" + "0" * 32),))
    with pytest.raises(UserError, match="checksum mismatch for mp3.zip.001 \\+ mp3.zip.002 \\+ mp3.zip.003"):
        download_dataset(bad, str(folder), progress=False)
    assert not (folder / "mp3.zip.001").exists()


def test_tar_extraction_resumes(tmp_path):
    archive_path = tmp_path / "genres.tar.gz"
    with tarfile.open(archive_path, "w:gz") as archive:
        for name, payload in (("genres/blues/blues.00000.au", b"x" * 300), ("genres/rock/rock.00000.au", b"y" * 200)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    folder = tmp_path / "out"
    (folder / "genres" / "blues").mkdir(parents=True)
    (folder / "genres" / "blues" / "blues.00000.au").write_bytes(b"x" * 10)  # cut short by an interruption
    extract([str(archive_path)], str(folder), progress=False)
    assert (folder / "genres" / "blues" / "blues.00000.au").read_bytes() == b"x" * 300
    assert (folder / "genres" / "rock" / "rock.00000.au").read_bytes() == b"y" * 200
    assert (folder / ".genres.tar.gz.extracted").exists()
