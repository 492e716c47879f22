"""autointerp-report: the HTML report of a run, run comparisons and their statistics, explanation
similarity and the sentence-embedding encoder. See README.md.

Light on purpose: ``autointerp plugins`` imports this package (through :mod:`.plugin`) and must not
import numpy or torch; the modules below import them.
"""
