"""recbole-eager: EAGER (KDD 2024) and RecBole baselines under one protocol."""

__version__ = "0.1.0"
