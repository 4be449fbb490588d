"""Training and evaluating the Table 1 classifiers (baseline, Top-K, Top-K mean replacement)."""
