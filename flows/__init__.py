"""Prefect flows over the pipeline: `retrain`, `relabel_round`, `loop`, their deployments
(`flows.serve`) and the Label Studio webhook receiver (`flows.webhook`)."""

import os

# The library's own logs (the registry's decision, a stage's progress) belong in the flow run's
# log in Prefect's UI too; read by Prefect when it is first imported.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "esgar,pipeline,flows")
# Those loggers also log outside any flow run (the webhook receiver, the CLI's checks); there
# Prefect has no run to attach them to, which is expected, not worth a warning per record.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
