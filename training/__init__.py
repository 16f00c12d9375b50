"""The library that trains a model: settings, devices, processes, batches, checkpoints, GPT-2s, a run's pieces."""
