"""Progress where standard output is not a terminal (nohup, Slurm, CI, docker logs): plain
lines with a timestamp while the run trains, not a bar shown only once it ends."""

from __future__ import annotations

import re
import time

from support.processes import cleaned_up, start_counter, wait_for_evals

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d PBT ([\d,]+)/4,000 steps", re.M)


def test_a_run_writing_to_a_file_logs_its_progress_while_it_trains(tmp_path):
    log, evals = tmp_path / "run.log", tmp_path / "evals"
    with open(log, "wb") as out:
        proc = start_counter(tmp_path / "s.db", evals, "--population", "4", "--workers",
                             "2", "--steps", "1000", "--ready-steps", "4",
                             env={"COUNTER_SLEEP": "0.01"}, stdout=out)
        with cleaned_up([proc]):
            wait_for_evals(proc, evals, 4)
            deadline = time.monotonic() + 15  # the first minute's pace: every 10 s
            while not any(int(n.replace(",", "")) > 0 for n in LINE.findall(log.read_text())):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            assert proc.poll() is None, "the line came only once the run ended"
            proc.wait(timeout=120)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "\x1b" not in text, "terminal codes in a log"
    assert LINE.findall(text)[-1] == "4,000", text  # a last line as the run ends
