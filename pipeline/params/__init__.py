"""params.yaml's sections as checked models: the loader in `base`, one module per topic."""
