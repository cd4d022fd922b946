"""The DreamBooth trainings API: Train -> Build -> Push -> Webhook, on your own machines.

One `POST /v1/trainings` (the payload of Replicate's DreamBooth API, unchanged) trains with a
trainer version, adds the weights on top of a template version at the registry level, tags the
result as a new version of `model`, and sends a signed webhook. Versions are manifest digests in
a real OCI registry; state lives in a SQL database; work runs through huey.
"""
