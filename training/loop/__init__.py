"""The training loop: batches, objectives, the trainer, evaluation and its metrics, devices.

It trains any model of `training.models` on any split of `training.data`, and knows neither
the CLI nor run folders.
"""
