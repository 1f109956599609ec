"""The override service: the customer's opt-outs and the operator's curtailments, one canonical record each.

``rules`` says which overrides the gateway refuses (on every edge, from the ingest path), ``resolve`` which of
several overrides of the same thing counts, ``service`` creates, withdraws, lists and audits them for the REST
API and the CLI, and ``settlement`` prices what an override changed.
"""
