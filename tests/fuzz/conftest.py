"""The fuzz group (``-m fuzz``): prints the tally of its cases at the end of the run."""

from __future__ import annotations

from _harness import summary_lines


def pytest_terminal_summary(terminalreporter):
    for line in summary_lines():
        terminalreporter.write_line(line)
