"""The experiment: the statistics, the evidence drawn from run records, figures and reports (no torch)."""
