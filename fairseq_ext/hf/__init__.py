"""The Hugging Face side: SQuAD evaluation, prediction and fine-tuning of exported models with
transformers and the project's shared SQuAD code. Never imports fairseq."""
