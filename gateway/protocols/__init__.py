"""Protocol adapters: one package per interface (codec, mapper, service), meeting only in gateway.model."""
