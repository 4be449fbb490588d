# Provenance shared by every stage: what software and device produced the results.

rule environment:
    output:
        "results/environment.txt",
    log:
        "logs/environment.log",
    threads: 1
    script:
        "../workflow_scripts/record_environment.py"
