"""Plumbing lessons share: chat rendering, shipped corpora, published model configurations. Never imports a lesson."""
