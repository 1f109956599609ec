"""CIM network models (IEC 61970/61968): a streaming reader for CIMHub feeders and CGMES multi-file models,
and the network view (locations, resources, transport limits) the market and DER mapping need."""

from gateway.protocols.cim.reader import CimModel, CimObject, CimReadError, normalise_id, read_cim

__all__ = ["CimModel", "CimObject", "CimReadError", "normalise_id", "read_cim"]
