# Provenance shared by every stage: what software and device produced the results.

rule environment:
    output:
        report(f"{RESULTS}/environment.txt", caption="../report/environment.rst", category="Provenance"),
    log:
        f"{LOGS}/environment.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/record_environment.py"
