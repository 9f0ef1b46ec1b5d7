"""Training with fairseq-hydra-train: the launcher (launch), its pre-flight checks (preflight) and the
data-parallel topologies it runs on (distributed)."""
