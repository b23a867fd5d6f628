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
