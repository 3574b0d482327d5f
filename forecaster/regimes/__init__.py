"""Regimes: window descriptors, the clusterer (fuzzy c-means), gates (memberships -> expert weights), labels."""
