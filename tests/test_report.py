"""SkipReport: deduplicated (path, reason) entries, summaries, atomic JSON, merging, thread safety."""
import json
import os
import pickle
import threading

import pytest

from clmr_lib.data.report import SkipReport


def test_add_keeps_order_and_the_first_reason():
    report = SkipReport()
    report.add("/b.mp3", "corrupt")
    report.add("/a.wav", "too short:\n 1.0 s")
    report.add("/b.mp3", "another reason")
    assert len(report) == 2 and bool(report)
    assert list(report) == [("/b.mp3", "corrupt"), ("/a.wav", "too short: 1.0 s")]
    assert "/a.wav" in report and "/c.wav" not in report and 3 not in report
    assert report.reason("/b.mp3") == "corrupt"


def test_extend_and_merge():
    first = SkipReport([("/a", "x")])
    first.extend([("/b", "y"), ("/a", "z")])
    second = SkipReport([("/c", "w"), ("/b", "v")])
    assert first.merge(second) is first
    assert first.items() == [("/a", "x"), ("/b", "y"), ("/c", "w")]
    assert second.items() == [("/c", "w"), ("/b", "v")]
    empty = SkipReport()
    assert not empty and len(empty) == 0


def test_summary_counts_and_lists_the_first_files():
    report = SkipReport((f"/music/{i:02d}.mp3", f"reason {i}") for i in range(12))
    lines = report.summary(limit=3).splitlines()
    assert lines == ["12 audio files skipped:", "  /music/00.mp3: reason 0", "  /music/01.mp3: reason 1",
                     "  /music/02.mp3: reason 2", "  ... and 9 more"]
    assert SkipReport([("/x.wav", "empty")]).summary() == "1 audio file skipped:\n  /x.wav: empty"
    assert SkipReport().summary() == "No audio files skipped."


def test_json_round_trip_is_atomic(tmp_path):
    report = SkipReport([("/a.wav", "empty file (0 bytes)"), ("/ü.mp3", "truncated")])
    path = tmp_path / "logs" / "skipped.json"
    report.to_json(str(path))
    assert os.listdir(path.parent) == ["skipped.json"]
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload == {"count": 2, "skipped": [{"path": "/a.wav", "reason": "empty file (0 bytes)"},
                                               {"path": "/ü.mp3", "reason": "truncated"}]}
    assert SkipReport.from_json(str(path)).items() == report.items()


def test_json_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "skipped.json"
    SkipReport([("/a", "x")]).to_json(str(path))
    before = path.read_text()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)  # the disk fails while the new file is being written
    with pytest.raises(OSError):
        SkipReport([("/b", "y")]).to_json(str(path))
    assert path.read_text() == before and os.listdir(tmp_path) == ["skipped.json"]


def test_threads_can_share_a_report():
    report = SkipReport()

    def add_many(worker):
        for i in range(2000):
            report.add(f"/{i % 1500}", f"worker {worker}")

    threads = [threading.Thread(target=add_many, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(report) == 1500 and len({p for p, _ in report}) == 1500


def test_pickles_for_worker_processes():
    report = pickle.loads(pickle.dumps(SkipReport([("/a", "x")])))
    report.add("/b", "y")
    assert report.items() == [("/a", "x"), ("/b", "y")]
