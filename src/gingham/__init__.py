"""gingham: cloud and container networking in the model of Project Calico."""

__version__ = "0.1.0"
