"""The step figures are folded across fresh processes (issue 12): one process's figure moves
with the machine's load, so the harness reports the median of several and their spread."""

from __future__ import annotations

from hiergym.benchmarks.perf.harness import STEP_HEADLINES, across_processes


def test_the_step_figure_is_the_median_of_the_processes_with_their_spread():
    runs = []
    for over in (14.0, 30.0, 12.0, 13.0, 25.0):  # two processes in a busy stretch
        run = {
            f"cached_step_us_over_noop_{kind}": over + i for i, kind in enumerate(STEP_HEADLINES)
        }
        run["noop_step_us_text"] = over / 40
        runs.append(run)
    figures = across_processes(runs)
    assert figures["cached_step_us_over_noop_text"] == 14.0  # not the mean (18.8), nor one run
    assert figures["cached_step_us_over_noop_text_min"] == 12.0
    assert figures["cached_step_us_over_noop_text_max"] == 30.0
    assert figures["cached_step_us_over_noop_toolcall"] == 16.0
    assert figures["cached_step_us_over_noop_toolcall_max"] == 32.0
    assert figures["noop_step_us_text"] == 14.0 / 40
    assert figures["step_processes"] == 5


def test_the_machine_figure_times_one_process_against_two(monkeypatch):
    # The 2-worker speedups are read against what the machine allows two processes: one
    # process doing two units of work in turn against two doing one each at once.
    from hiergym.benchmarks.perf import harness

    asked, real = [], harness._machine_run
    assert 0.05 < real(1, 1) < 60  # the real unit runs and reports its time

    def run(units, processes):  # a machine on which two processes each run 1.25x slower
        asked.append((units, processes))
        return {(2, 1): 2.0, (1, 2): 1.25}[(units, processes)]

    monkeypatch.setattr(harness, "_machine_run", run)
    figures = harness.machine_figures(rounds=3)
    assert asked == [(2, 1), (1, 2)] * 3
    assert figures["machine_2_process_speedup"] == 1.6
    assert figures["machine_2_process_speedup_min"] == figures["machine_2_process_speedup_max"]
