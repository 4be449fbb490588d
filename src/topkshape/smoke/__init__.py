"""The paper smoke run: the paper configuration's whole DAG, offline, on a small machine.

``python -m topkshape.smoke`` (``make paper-smoke``) builds a miniature ILSVRC2012 tree for the
paper config's own WNIDs, serves every download the paper config makes from 127.0.0.1 (the
paper's published files and model-vs-human's decisions as they are; the pretrained networks as
files of the real format holding random weights), writes an overlay that points the paper
config at that server and pins each file's SHA-256 (``downloads.require_pinned`` stays on), runs
``snakemake all`` with ``config/paper.yaml`` + ``config/paper-smoke.yaml`` (counts only) + that
overlay, and checks what every output holds.
"""
