"""Training runs: configuration, run state and checkpoints, artifacts on disk, the training job."""
