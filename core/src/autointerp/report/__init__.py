"""Reports on finished runs: the HTML report, plots, run comparisons and their statistics."""
