"""OASIS Energy Interoperation 1.0 (TeMIX profile) and CTS: tenders, quotes, transactions, positions, deliveries."""
