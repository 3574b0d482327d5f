"""Regimes: descriptors of a window, fuzzy c-means, gates (memberships -> expert weights), labels."""
