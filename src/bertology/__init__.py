"""bertology: see why BERT works, on any BERT-family model."""

__version__ = "0.1.0"
