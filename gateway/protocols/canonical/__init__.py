"""The canonical JSON form itself, as a translation endpoint (validate and normalise)."""
