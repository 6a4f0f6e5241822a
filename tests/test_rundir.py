"""The run directory's records: tolerant readers, one definition of "trained", finding runs in a study."""

import json

from pvm_mbrl.rundir import RunDir, TrainerState, decode_json_lines, find_run_dirs, read_json


def test_metrics_reader_skips_torn_and_undecodable_lines_only(tmp_path):
    files = RunDir(tmp_path)
    files.metrics_path.write_bytes(b'{"step": 1, "a": 1.0}\n{"step": 2, "a": \xff\xfe}\n{"step": 3, "a": 3.0}\n'
                                   b'[1, 2]\n{"step": 4, "a"')
    records, note = files.metric_records()
    assert [r["step"] for r in records] == [1, 3]
    assert note == "metrics.jsonl: line(s) 2, 4, 5 do not decode; used the 2 complete records"
    assert files.metric("a") == [(1, 1.0), (3, 3.0)]
    assert files.last_logged_step() == 3 and files.metrics_needs_newline()


def test_a_half_written_last_line_is_named_as_such():
    records, bad = decode_json_lines(b'{"step": 1}\n{"st')
    assert records == [{"step": 1}] and bad == [2]


def test_missing_files_read_as_empty(tmp_path):
    files = RunDir(tmp_path / "nothing")
    assert files.metric_records() == ([], None) and files.status() == {} and files.job_record() == {}
    assert not files.has_run_files() and files.last_logged_step() == 0 and not files.metrics_needs_newline()


def test_trained_needs_finished_state_and_enough_steps(tmp_path):
    files = RunDir(tmp_path)
    assert not files.trained(100)
    files.write_status(TrainerState.INTERRUPTED, 100, 100, 5, 0.0)
    assert not files.trained(100)
    files.write_status(TrainerState.FINISHED, 100, 100, 5, 0.0)
    assert files.trained(100) and not files.trained(200) and files.trained_steps() == 100
    files.status_path.write_text('{"state": "fini')  # a foreign, torn edit reads as no status
    assert not files.trained(100) and read_json(files.status_path) is None


def test_training_output_leaves_out_the_lock_and_the_jobs_own_files(tmp_path):
    files = RunDir(tmp_path)
    files.write_job_record({"state": "running"})
    files.job_log.write_text("hello\n")
    assert not files.has_run_files()
    files.config.write_text("seed: 0\n")
    assert [p.name for p in files.training_output()] == [files.config.name]
    assert json.loads(files.job_record_path.read_text()) == {"state": "running"}


def test_find_run_dirs_stops_at_a_run_and_skips_hidden_directories(tmp_path):
    for rel in ("a/seed0", "a/seed1", "b", ".discarded/a-seed0"):
        RunDir(tmp_path / rel).path.mkdir(parents=True)
        RunDir(tmp_path / rel).config.write_text("seed: 0\n")
    (tmp_path / "a/seed0/evaluations/nested").mkdir(parents=True)
    RunDir(tmp_path / "a/seed0/evaluations/nested").config.write_text("x: 1\n")
    assert [p.relative_to(tmp_path).as_posix() for p in find_run_dirs(tmp_path)] == ["a/seed0", "a/seed1", "b"]
