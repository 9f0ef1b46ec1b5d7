"""The training launcher (fairseq_ext/training/launch.py) under its former script path, kept for job scripts
that call it: scripts/pretrain.sh and scripts/finetune_squad2.sh run the launcher module directly, and it is
installed as `roberta-train`. Same flags; --help lists them."""

if __name__ == "__main__":
    from fairseq_ext.training.launch import cli

    cli()
