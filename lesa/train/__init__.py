"""Training the new layers: the Trainer with exact resume (trainer, components), its checkpointer and the
freezing of the old layers. `python -m lesa.train` runs lesa.train.trainer.

Layer 4: may import lesa.core, lesa.data, lesa.grow and lesa.eval.
"""
