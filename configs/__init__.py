"""Experiment configs: ``common.py`` + one readable file per experiment."""
