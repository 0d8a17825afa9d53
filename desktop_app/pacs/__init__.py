"""Talking to a PACS over DIMSE (pynetdicom).

Modules (one job each):
- nodes: PACS nodes and our own AE (pacs.json): validation, load and save.
- store: the local store of retrieved instances by hashed UIDs; the C-STORE receiver.
- dimse: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE with timeouts, progress, stop, one-line errors.
- requests: what the requests carry: SOP classes, return keys, identifiers, presentation contexts.
- query: the query/retrieve dialog's logic: query form -> C-FIND keys, matches -> table rows.
"""
