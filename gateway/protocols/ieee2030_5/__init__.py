"""IEEE 2030.5-2018 / CSIP: codec, mapper, event engine and server for DER clients."""
