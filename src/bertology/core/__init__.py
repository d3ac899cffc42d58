"""The machinery every experiment shares: loading models, precision, batched inference, training."""
