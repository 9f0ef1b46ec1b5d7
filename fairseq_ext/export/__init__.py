"""fairseq <-> Hugging Face conversion of RoBERTa models (imports fairseq, torch and transformers).

to_hf / from_hf run a conversion; config (architecture), state_dict (tensors), tokenizer_files
(vocabulary), fairseq_model (the fairseq side), verify (the numeric check), card (the model card) and
fairseq_ext.outputs writes the output directory as a unit.
"""
