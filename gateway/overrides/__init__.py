"""The override service: the customer's opt-outs, the operator's curtailments and operating envelopes.

``rules`` says which overrides the gateway refuses (on every edge, from the ingest path), ``resolve`` which of
several overrides of the same thing counts, ``service`` creates, withdraws, lists and audits them for the REST
API and the CLI, ``policy`` reads the operator's program terms (mappings/overrides.yaml), ``settlement`` prices
what an override changed (pure) from what ``inputs`` reads, ``curtailment`` shares a required reduction among DERs
(pure) and ``dispatch`` turns it into controls, and ``envelopes`` computes dynamic operating envelopes (pure).
"""
