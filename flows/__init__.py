"""Prefect flows over the pipeline: `retrain`, `relabel_round`, `loop`, their deployments
(`flows.serve`) and the Label Studio webhook receiver (`flows.webhook`)."""

import os

# The library's own logs (the registry's decision, a stage's progress) belong in the flow run's
# log in Prefect's UI too; read by Prefect when it is first imported.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "esgar,pipeline,flows")
