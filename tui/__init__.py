"""Everything a person touches in a terminal: the Textual app and the ``ferry`` command line.

Both are thin faces over :mod:`backend`; no logic lives only here.
"""
