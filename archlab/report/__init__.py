"""Run-directory I/O, plots and reports."""
