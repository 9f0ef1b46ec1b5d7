"""Corpus preparation, streaming with bounded memory: reading (line blocks as fairseq's encoder reads
them), encoders (exact GPT-2 BPE at dictionary-lookup speed), pool (ordered worker processes), drivers
(bpe-encode and binarize), split (documents into train/valid/test). No fairseq or torch import."""
