"""attncli: put attention variants side by side. Importing the package does not import torch."""

__version__ = "0.1.0"
