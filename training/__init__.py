"""logdigit training: synthetic renderer, pretraining, fine-tuning, evaluation (needs torch)."""
