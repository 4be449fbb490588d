"""Beyond shape bias: robustness measures beside every shape-bias number (model-vs-human's OOD analyses)."""
