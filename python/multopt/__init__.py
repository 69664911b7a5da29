"""multopt: multiplicative and hybrid update rules for any optimizer, with multopt's fused steps.

multopt.torch holds the optimizers for PyTorch (torch.optim.Optimizer subclasses); see
docs/pytorch.md.
"""

__version__ = "0.1.0"
