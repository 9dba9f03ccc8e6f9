"""The pieces of the CSV import behind ``storage.importer.import_csv``.

``source`` reads the file (checks, header, records with their line numbers), ``cells`` turns
one cell's text into a typed value or a ``RowError``, ``sql`` writes batches with raw
parameterised statements, and one module per kind (``customers``, ``policies``, ``claims``,
``payments``) validates a record and upserts a batch of them.
"""
