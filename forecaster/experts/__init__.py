"""Experts: the K-expert LSTM network, its heads and losses, devices, and the training loops."""
